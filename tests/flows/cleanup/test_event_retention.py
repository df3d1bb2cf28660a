"""Event retention on real servers, database path, both databases: each type by its
rule's retention or keep-last-N per resource, types that share a cutoff in one sweep,
unnamed types untouched, resources going with their events and only with them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import PrefectClient
from prefect.server.database import orm_models

from flows.devstack.server import LocalServer
from flows.history.seed import table
from helpers.cleanup import RunCleanup
from helpers.retention import event, existing, insert, scalar

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)
database_only = pytest.mark.parametrize("path", ["database"])


async def seed_events(
    server: LocalServer, flow_name: str, rows: list[tuple[dict, list[dict]]]
) -> None:
    """The events and their resources, and the flow the cleanup is scoped to."""
    await insert(server.database_url, orm_models.Event, [row for row, _ in rows])
    await insert(server.database_url, orm_models.EventResource, [r for _, rs in rows for r in rs])
    async with PrefectClient(server.api_url) as client:
        await client.create_flow_from_name(flow_name)


@database_only
async def test_events_go_by_type_retention_and_by_the_newest_n_per_resource(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    prefix = f"janitor.test.{uuid.uuid4().hex[:8]}"
    rows: list[tuple[dict, list[dict]]] = []
    # All younger than the server's own event retention (7 days), which its vacuum
    # enforces on its own schedule.
    rows += [event(f"{prefix}.old", "res.1", DAY * 3) for _ in range(5)]
    rows += [event(f"{prefix}.old", "res.1", timedelta(hours=1)) for _ in range(2)]
    for resource in ("run.a", "run.b", "run.c"):
        rows += [
            event(f"{prefix}.heartbeat", resource, timedelta(hours=2 * n + 1)) for n in range(5)
        ]
    rows += [event(f"{prefix}.unnamed", "res.2", DAY * 5) for _ in range(3)]
    await seed_events(server, flow_name, rows)

    report = await run_cleanup(
        events=[
            {"types": [f"{prefix}.old"], "retention_days": 1},
            {"name": "last 3 heartbeats", "types": [f"{prefix}.heart*"], "keep_last": 3},
        ],
        flows=[flow_name],
        approval="none",
    )

    events, resources = table(orm_models.Event), table(orm_models.EventResource)

    def left(kind: str) -> sa.Select:
        return sa.select(sa.func.count()).where(events.c.event == f"{prefix}.{kind}")

    assert await scalar(server.database_url, left("old")) == 2
    assert await scalar(server.database_url, left("heartbeat")) == 9
    assert await scalar(server.database_url, left("unnamed")) == 3
    # Each kept event keeps both of its resources; none of a deleted one is left.
    kept = sa.select(events.c.id).where(events.c.event.like(f"{prefix}.%"))
    ours = [r["id"] for _, rs in rows for r in rs]
    assert (
        await scalar(
            server.database_url,
            sa.select(sa.func.count()).where(
                resources.c.id.in_(ours), resources.c.event_id.in_(kept)
            ),
        )
        == 2 * 14
    )
    assert len(await existing(server.database_url, orm_models.EventResource, ours)) == 2 * 14
    preview, summary = report.preview, report.summary
    assert preview is not None
    assert summary is not None
    (target,) = preview.targets
    assert target.rows == {"events": 11, "event_resources": 22}
    assert summary.rows == preview.rows_by_table() == {"events": 11, "event_resources": 22}
    sizes = {size.table: size for size in preview.tables}
    assert sizes["events"].going_rows == 11
    assert 0 < sizes["events"].going_bytes < sizes["events"].bytes


@database_only
async def test_types_that_share_a_cutoff_go_together_batch_by_batch_through_equal_times(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    """One sweep for three types with the same retention, four events a batch, and
    twenty events at the very same moment: the keyset cursor neither skips nor repeats
    any, and a type the policy does not name, interleaved with them, stays."""
    prefix = f"janitor.test.{uuid.uuid4().hex[:8]}"
    tied = datetime.now(UTC) - DAY * 3
    rows: list[tuple[dict, list[dict]]] = []
    for kind in ("a", "b", "c", "unnamed"):
        rows += [event(f"{prefix}.{kind}", "res.1", DAY, at=tied) for _ in range(5)]
    rows += [event(f"{prefix}.a", "res.2", DAY * 2 + timedelta(minutes=n)) for n in range(3)]
    rows += [event(f"{prefix}.{kind}", "res.3", timedelta(hours=1)) for kind in ("a", "b")]
    await seed_events(server, flow_name, rows)

    report = await run_cleanup(
        events=[
            {"types": [f"{prefix}.a", f"{prefix}.b"], "retention_days": 1},
            {"types": [f"{prefix}.c"], "retention_days": 1},
        ],
        flows=[flow_name],
        approval="none",
        batch_size=1,
        batch_seconds=0,
    )

    events = table(orm_models.Event)
    left = {
        kind: await scalar(
            server.database_url,
            sa.select(sa.func.count()).where(events.c.event == f"{prefix}.{kind}"),
        )
        for kind in ("a", "b", "c", "unnamed")
    }
    assert left == {"a": 1, "b": 1, "c": 0, "unnamed": 5}
    assert report.summary is not None
    assert report.summary.rows == {"events": 18, "event_resources": 36}
