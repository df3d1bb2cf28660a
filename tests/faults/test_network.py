"""Between the worker and the server: answers lost or late, and the worker itself killed
in the middle of a batch. The count comes from what the server holds, never from an
answer, so it is exact; the manifest keeps every delete inside what was approved; a
killed worker's slot comes back without anyone resetting it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from flows.cleanup.config import RetentionConfig
from flows.cleanup.flow import CleanupOutcome, CleanupReport
from flows.devstack.server import LocalServer
from flows.history.bulk import bulk_seed
from flows.history.seed import RunSpec, make_history
from flows.probe.flow import metric_probe
from helpers.cleanup import against, events_of, path_settings, surviving
from helpers.faults import Figure, Record, backend_of, cleanup
from helpers.proxy import Rule, fault_proxy

pytestmark = pytest.mark.anyio

OLD = timedelta(days=40)


def keepers(flow: str) -> list[RunSpec]:
    return [
        RunSpec(flow, ago=OLD, tags=["keep"]),
        RunSpec(flow, ago=timedelta(days=2)),
        RunSpec(flow, "Running", ago=OLD),
        RunSpec(flow, "Failed", ago=OLD, tags=["Keep"]),
    ]


async def count(api_url: str, flow: str) -> int:
    async with PrefectClient(api_url) as client:
        return await client.count_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow]))
        )


async def test_lost_and_late_answers_change_neither_what_goes_nor_the_count(
    fault_server: LocalServer, monkeypatch: pytest.MonkeyPatch, record: Record
) -> None:
    server = fault_server
    flow = f"lossy-{uuid.uuid4().hex[:8]}"
    doomed = [RunSpec(flow, ago=OLD, logs=1) for _ in range(30)]
    ids = await make_history(server.api_url, server.database_url, doomed + keepers(flow))
    # One re-send by Prefect's client (five as shipped), so a lost answer costs seconds.
    with fault_proxy(server.api_url) as proxy, temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 1}):
        lost = proxy.add(Rule(r"^POST /flow_runs/bulk_delete", "drop", times=4))
        late = proxy.add(Rule(r"^POST /flow_runs/filter", "delay", times=3, seconds=1))
        busy = proxy.add(Rule(r"^POST /flow_runs/filter", "fail", times=1, status=503))
        report = await cleanup(
            server,
            "api",
            monkeypatch,
            proxy.api_url,
            flows=[flow],
            approval="none",
            batch_size=5,
        )
    kept = await surviving(server.api_url, ids[30:])
    gone = len(ids) - len(await surviving(server.api_url, ids))
    assert report.summary is not None
    assert report.flow_run_id is not None
    done = await events_of(server.api_url, report.flow_run_id, "janitor.deletion.completed")
    record(
        Figure(
            "answers lost (4), late (3) and busy (1) between worker and server",
            backend_of(server),
            "api",
            approved=report.summary.approved,
            deleted=gone,
            outside_approval=4 - len(kept),
            locked_out=False,
            lost=4 - len(kept),
            announced="none needed: janitor.deletion.completed",
        )
    )
    assert (lost.hits, late.hits, busy.hits) == (4, 3, 1)
    assert report.outcome is CleanupOutcome.DELETED
    assert (report.summary.approved, report.summary.deleted, gone) == (30, 30, 30)
    assert (report.summary.skipped, report.summary.failed, report.summary.unconfirmed) == (0, 0, 0)
    assert kept == set(ids[30:])
    assert done


CLEANUP = """
import asyncio, sys
from flows.cleanup.flow import database_cleanup
from flows.cleanup.config import RetentionConfig
asyncio.run(database_cleanup(RetentionConfig.model_validate_json(sys.argv[1])))
"""


async def test_a_worker_killed_mid_batch_leaves_whole_batches_and_its_slot_comes_back(
    fault_server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, record: Record
) -> None:
    """SIGKILL in the middle of the deletion: every batch committed whole or not at all,
    and the next cleanup runs once Prefect's lease on the killed run's slot expires (a
    minute), with nobody resetting anything."""
    server = fault_server
    path = "database" if backend_of(server) == "postgres" else "api"
    flow = f"killed-{uuid.uuid4().hex[:8]}"
    doomed = 300
    await bulk_seed(
        server.api_url,
        server.database_url,
        doomed,
        flow_name=flow,
        task_runs_per_run=1,
        logs_per_run=2,
    )
    keep = await make_history(server.api_url, server.database_url, keepers(flow))
    config = RetentionConfig(
        flows=[flow],
        approval="none",
        batch_size=2,
        **path_settings(path),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=server.api_url, PREFECT_HOME=str(tmp_path))
    if path == "database":
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = server.database_url
    worker = subprocess.Popen(
        [sys.executable, "-c", CLEANUP, config.model_dump_json()],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    total = doomed + len(keep)
    deadline = time.monotonic() + 120
    try:
        while await count(server.api_url, flow) > total - 20:
            assert worker.poll() is None, "the worker ended before it could be killed"
            assert time.monotonic() < deadline, "the worker never started deleting"
            await asyncio.sleep(0.02)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed_at = time.monotonic()
    left = await count(server.api_url, flow)
    assert len(keep) < left < total - 2, f"killed too late to test anything ({left} left)"

    # Cleanups started meanwhile are skipped (the killed run's lease still holds the
    # slot); none needs a manual reset, and the first after the lease runs it all.
    after: CleanupReport | None = None
    skipped = 0
    while after is None or after.outcome is CleanupOutcome.SKIPPED:
        assert time.monotonic() - killed_at < 150, "the slot never came back"
        if after is not None:
            skipped += 1
            await asyncio.sleep(5)
        after = await cleanup(server, path, monkeypatch, flows=[flow], approval="none")
    waited = time.monotonic() - killed_at
    async with against(server, "api", monkeypatch):
        probed = await metric_probe()

    kept = await surviving(server.api_url, keep)
    assert after.summary is not None
    record(
        Figure(
            "worker killed mid-batch (SIGKILL)",
            backend_of(server),
            path,
            approved=doomed,
            deleted=total - await count(server.api_url, flow),
            outside_approval=len(keep) - len(kept),
            locked_out=False,
            lost=len(keep) - len(kept),
            announced=f"slot back after {waited:.0f} s (lease expiry), no reset",
        )
    )
    assert after.outcome is CleanupOutcome.DELETED
    assert probed.outcome == "probed"
    assert after.summary.deleted == left - len(keep)
    assert (after.summary.failed, after.summary.skipped) == (0, 0)
    assert kept == set(keep)
    assert await count(server.api_url, flow) == len(keep)
