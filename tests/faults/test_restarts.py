"""A self-hosted server restarts (an upgrade, a crash): during an approval, during a
deletion, during a probe run. Nothing unapproved goes, the counts are what happened,
and the next cleanup and probe run as if nothing had happened: no manual reset."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.states import State

from flows.cleanup.flow import CleanupOutcome
from flows.devstack.server import LocalServer
from flows.history.bulk import bulk_seed
from flows.history.seed import RunSpec, make_history
from flows.lock import RECOVERED
from flows.probe.flow import ProbeReport, metric_probe
from helpers.cleanup import against, paused_cleanups, surviving
from helpers.faults import ONE_RUN_A_BATCH, Figure, Record, backend_of, cleanup, restart
from helpers.proxy import Rule, fault_proxy
from helpers.servers import wait_for_events
from triggers.sync import sync_automations

pytestmark = pytest.mark.anyio

OLD = timedelta(days=40)


def history(flow: str, old: int) -> list[RunSpec]:
    """``old`` runs a cleanup may take, and four it must never take."""
    specs = [RunSpec(flow, ago=OLD, logs=1) for _ in range(old)]
    specs += [RunSpec(flow, ago=OLD, tags=["keep"]), RunSpec(flow, ago=timedelta(days=2))]
    specs += [RunSpec(flow, "Running", ago=OLD), RunSpec(flow, "Failed", ago=OLD, tags=["Keep"])]
    return specs


async def recovered(api_url: str) -> bool:
    found = await wait_for_events(
        api_url, {"event": {"name": [RECOVERED]}}, lambda events: bool(events), timeout=20
    )
    return bool(found)


async def answer(api_url: str, flow_run_id: uuid.UUID, approve: bool) -> None:
    async with PrefectClient(api_url) as client:
        result = await client.resume_flow_run(
            flow_run_id, run_input={"approve": approve, "notes": "", "approver": "test"}
        )
    assert result.status.value == "ACCEPT", result


async def test_a_restart_while_a_cleanup_waits_for_approval_locks_no_cleanup_out(
    fault_server: LocalServer, monkeypatch: pytest.MonkeyPatch, record: Record
) -> None:
    server = fault_server
    flow = f"waiting-{uuid.uuid4().hex[:8]}"
    ids = await make_history(server.api_url, server.database_url, history(flow, 3))
    waiting = asyncio.create_task(
        cleanup(server, "api", monkeypatch, flows=[flow], approval="human")
    )
    (paused,) = await paused_cleanups(server.api_url)

    # Prefect keeps slot leases in the server's memory: the restart loses this one.
    await asyncio.to_thread(restart, server)
    await answer(server.api_url, paused, approve=False)
    rejected = await waiting
    after = await cleanup(server, "api", monkeypatch, flows=[flow], approval="none")
    async with against(server, "api", monkeypatch):
        probed = await metric_probe()

    assert rejected.outcome is CleanupOutcome.REJECTED
    assert after.outcome is CleanupOutcome.DELETED, "the restart must not lock cleanups out"
    assert probed.outcome == "probed", "nor probes"
    assert after.summary is not None
    assert (after.summary.approved, after.summary.deleted) == (3, 3)
    assert await surviving(server.api_url, ids) == set(ids[3:])
    assert await recovered(server.api_url)
    record(
        Figure(
            "server restart during approval",
            backend_of(server),
            "api",
            3,
            3,
            0,
            False,
            0,
            "janitor.lock.recovered",
        )
    )


async def count(api_url: str, flow: str) -> int:
    async with PrefectClient(api_url) as client:
        return await client.count_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow]))
        )


async def once_deleting(api_url: str, flow: str, total: int, timeout: float = 120) -> None:
    """Until the cleanup has deleted its first runs (and has most still to go)."""
    deadline = time.monotonic() + timeout
    while await count(api_url, flow) > total - 2:
        assert time.monotonic() < deadline, "the cleanup never started deleting"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("path", ["api", "database"])
async def test_a_restart_during_a_deletion_is_waited_out_and_counted_exactly(
    fault_server: LocalServer, path: str, monkeypatch: pytest.MonkeyPatch, record: Record
) -> None:
    server = fault_server
    flow = f"deleting-{uuid.uuid4().hex[:8]}"
    doomed = 400 if path == "database" else 60
    seeded = await bulk_seed(
        server.api_url,
        server.database_url,
        doomed,
        flow_name=flow,
        task_runs_per_run=1,
        logs_per_run=2,
    )
    keep = await make_history(server.api_url, server.database_url, history(flow, 0))
    running = asyncio.create_task(
        cleanup(
            server,
            path,
            monkeypatch,
            flows=[flow],
            **ONE_RUN_A_BATCH,
        )
    )
    await once_deleting(server.api_url, flow, doomed + len(keep))
    await asyncio.to_thread(restart, server)
    report = await running

    left = await count(server.api_url, flow)
    kept = await surviving(server.api_url, keep)
    completed = await wait_for_events(
        server.api_url,
        {
            "event": {"name": ["janitor.deletion.completed"]},
            "any_resource": {"id": [f"janitor.cleanup.{report.flow_run_id}"]},
        },
        lambda events: bool(events),
    )
    assert report.summary is not None
    record(
        Figure(
            "server restart during deletion",
            backend_of(server),
            path,
            approved=report.summary.approved,
            deleted=doomed + len(keep) - left,
            outside_approval=len(keep) - len(kept),
            locked_out=False,
            lost=len(keep) - len(kept),
            announced="janitor.deletion.completed" if completed else "",
        )
    )
    assert seeded.runs == doomed
    assert report.outcome is CleanupOutcome.DELETED
    assert (report.summary.approved, report.summary.deleted) == (doomed, doomed)
    assert (report.summary.skipped, report.summary.failed, report.summary.unconfirmed) == (0, 0, 0)
    assert left == len(keep)
    assert kept == set(keep)
    assert completed


async def _probe_state() -> State[ProbeReport]:
    """A probe run's final state, whether it finished or failed."""
    return await metric_probe(return_state=True)


RULE = """\
name: restart-{flow}
trigger:
  type: metric
  metric: flow_runs.count
  query: {{flows: [{flow}], older_than: 30d}}
  threshold: 0
actions: [{{type: do-nothing}}]
"""


async def test_a_restart_during_a_probe_run_leaves_the_next_one_whole(
    fault_server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, record: Record
) -> None:
    """The server goes away while a probe waits for a count (held by a proxy): that run
    fails or finishes, and the next run measures, fires once and is not locked out."""
    server = fault_server
    flow = f"probed-{uuid.uuid4().hex[:8]}"
    await make_history(server.api_url, server.database_url, [RunSpec(flow, ago=OLD)])
    (tmp_path / "rule.yaml").write_text(RULE.format(flow=flow))
    outcome = await sync_automations(tmp_path, api_url=server.api_url, environ={})
    assert outcome.error is None
    with fault_proxy(server.api_url) as proxy:
        held = proxy.add(Rule(r"^POST /flow_runs/count", "hold", times=1, seconds=2))
        async with against(server, "api", monkeypatch, proxy.api_url):
            probing: asyncio.Task[State[ProbeReport]] = asyncio.create_task(_probe_state())
            deadline = time.monotonic() + 60
            while not held.hits:
                assert time.monotonic() < deadline, "the probe never asked for its count"
                await asyncio.sleep(0.05)
            await asyncio.to_thread(restart, server)
            interrupted = await probing
    async with against(server, "api", monkeypatch):
        after = await metric_probe()

    firings = await wait_for_events(
        server.api_url,
        {
            "event": {"name": ["janitor.metric.firing"]},
            "resource": {"id": [f"janitor.metric.restart-{flow}"]},
        },
        lambda events: bool(events),
    )
    record(
        Figure(
            "server restart during a probe run",
            backend_of(server),
            "probe",
            approved=0,
            deleted=0,
            outside_approval=0,
            locked_out=after.outcome == "skipped",
            lost=0,
            announced=f"probe run {interrupted.type.value.lower()}; next run fired once",
        )
    )
    assert after.outcome == "probed", "the next probe run must not be locked out"
    assert len(firings) == 1, "one firing, whether the interrupted run got to it or not"
