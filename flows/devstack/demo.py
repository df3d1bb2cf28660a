"""The local stack's ``--demo``: old history that the shipped automation reacts to at once.

The demo runs on a throwaway server of its own, so its seeded runs never mix
with real history. It writes a few thousand finished runs of the flow
``janitor-demo`` that ended 40 to 50 days ago (with task runs and logs), a
few equally old runs tagged ``keep`` and some recent ones, and lowers the
thresholds of ``janitor-cleanup-when-old-runs-pile-up`` below what it wrote.
The probe's first run then fires both of that automation's rules, the
automation starts the cleanup, and the cleanup asks for approval. After
approval the old runs go; the protected and recent ones stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flows.history.bulk import bulk_seed
from flows.history.seed import RunSpec, make_history

FLOW = "janitor-demo"
OLD_RUNS = 1_500
LOGS_PER_RUN = 5
PROTECTED_RUNS = 5
RECENT_RUNS = 10

#: The shipped automation's thresholds, below what the demo writes; a person approves
#: (whatever the environment says: the demo is about being asked); and a quicker probe,
#: so the metrics resolve soon after the deletion.
ENVIRONMENT = {
    "JANITOR_OLD_RUNS_LIMIT": "1000",
    "JANITOR_LOG_ROWS_LIMIT": "5000",
    "JANITOR_OLD_RUNS_APPROVAL": "human",
    "JANITOR_PROBE_INTERVAL": "20",
}


@dataclass(frozen=True)
class Seeded:
    """What the demo wrote, for the message that explains what happens next."""

    old: int
    logs: int
    protected: int
    recent: int


async def seed_demo(api_url: str, database_url: str) -> Seeded:
    """Write the demo's history on the server at ``api_url`` (its database at ``database_url``)."""
    bulk = await bulk_seed(
        api_url,
        database_url,
        OLD_RUNS,
        flow_name=FLOW,
        logs_per_run=LOGS_PER_RUN,
        ended_ago=timedelta(days=40),
        spread=timedelta(days=10),
    )
    # Made through the API: these carry a state history and logs as real runs do.
    specs = [
        RunSpec(FLOW, "Completed", ago=timedelta(days=45), tags=["keep"], logs=3)
    ] * PROTECTED_RUNS + [RunSpec(FLOW, "Completed", ago=timedelta(days=1), logs=3)] * RECENT_RUNS
    await make_history(api_url, database_url, specs)
    return Seeded(old=bulk.runs, logs=bulk.logs, protected=PROTECTED_RUNS, recent=RECENT_RUNS)
