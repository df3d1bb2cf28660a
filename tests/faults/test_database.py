"""The server's database misbehaves under an in-process deletion: it goes away for a
while, or for good; a statement waits longer than Prefect's 10 s statement timeout; on
SQLite another writer holds the lock. Each batch commits whole or not at all, so nothing
unapproved goes and the counts stay exact; a fault that passes is waited out, one that
does not ends the cleanup announced (``janitor.deletion.failed``), and the next cleanup
finishes the work."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

import flows.cleanup.patience
from flows.cleanup.deletion import DeletionFailed
from flows.cleanup.flow import CleanupOutcome
from flows.devstack.server import LocalServer
from flows.history.bulk import bulk_seed
from flows.history.seed import RunSpec, make_history
from helpers.cleanup import events_of, surviving
from helpers.faults import ONE_RUN_A_BATCH, Figure, Record, backend_of, cleanup
from helpers.proxy import TcpProxy
from helpers.servers import POSTGRES_DSN, fresh_server, wait_for_events

pytestmark = pytest.mark.anyio

OLD = timedelta(days=40)
DOOMED = 1000
"""Enough that a deletion one run at a time is still going when the fault comes."""


@pytest.fixture(scope="module")
def postgres_fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with fresh_server("postgres", tmp_path_factory.mktemp("fault-pg-db")) as server:
        yield server


@pytest.fixture(scope="module")
def sqlite_fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with fresh_server("sqlite", tmp_path_factory.mktemp("fault-sqlite-db")) as server:
        yield server


async def seeded(server: LocalServer) -> tuple[str, list[uuid.UUID]]:
    """DOOMED old runs of a flow of their own, and four of it that must stay."""
    flow = f"db-fault-{uuid.uuid4().hex[:8]}"
    await bulk_seed(
        server.api_url,
        server.database_url,
        DOOMED,
        flow_name=flow,
        task_runs_per_run=1,
        logs_per_run=3,
    )
    keep = [
        RunSpec(flow, ago=OLD, tags=["keep"]),
        RunSpec(flow, ago=timedelta(days=2)),
        RunSpec(flow, "Running", ago=OLD),
        RunSpec(flow, "Completed", ago=OLD, tags=["KEEP"]),
    ]
    return flow, await make_history(server.api_url, server.database_url, keep)


async def count(api_url: str, flow: str) -> int:
    async with PrefectClient(api_url) as client:
        return await client.count_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow]))
        )


async def once_deleting(server: LocalServer, flow: str) -> None:
    deadline = time.monotonic() + 120
    while await count(server.api_url, flow) > DOOMED + 4 - 2:
        assert time.monotonic() < deadline, "the cleanup never started deleting"
        await asyncio.sleep(0.05)


def hold_write_lock(path: str, seconds: float) -> float:
    """Take SQLite's write lock, hold it ``seconds``, let go; how long it was held.

    Tried in a tight loop: a deletion that commits batch after batch leaves only
    short gaps between its transactions.
    """
    connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.0005)
        taken = time.monotonic()
        time.sleep(seconds)
        connection.execute("ROLLBACK")
        return time.monotonic() - taken
    finally:
        connection.close()


def database_name(server: LocalServer) -> str:
    return server.database_url.rsplit("/", 1)[1]


async def cut_off(server: LocalServer) -> None:
    """No new connection to the server's database, and every open one closed."""
    admin = await asyncpg.connect(f"{POSTGRES_DSN}/postgres")
    try:
        name = database_name(server)
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()


async def reconnect(server: LocalServer) -> None:
    admin = await asyncpg.connect(f"{POSTGRES_DSN}/postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{database_name(server)}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def test_a_database_gone_for_seconds_is_waited_out(
    postgres_fault_server: LocalServer, monkeypatch: pytest.MonkeyPatch, record: Record
) -> None:
    server = postgres_fault_server
    flow, keep = await seeded(server)
    running = asyncio.create_task(
        cleanup(
            server,
            "database",
            monkeypatch,
            flows=[flow],
            **ONE_RUN_A_BATCH,
        )
    )
    await once_deleting(server, flow)
    await cut_off(server)
    await asyncio.sleep(6)
    await reconnect(server)
    report = await running

    kept = await surviving(server.api_url, keep)
    left = await count(server.api_url, flow)
    assert report.summary is not None
    record(
        Figure(
            "database unreachable for 6 s mid-deletion",
            backend_of(server),
            "database",
            approved=report.summary.approved,
            deleted=DOOMED + len(keep) - left,
            outside_approval=len(keep) - len(kept),
            locked_out=False,
            lost=len(keep) - len(kept),
            announced="waited out; janitor.deletion.completed",
        )
    )
    assert report.outcome is CleanupOutcome.DELETED
    assert (report.summary.approved, report.summary.deleted, report.summary.failed) == (
        DOOMED,
        DOOMED,
        0,
    )
    assert (left, kept) == (len(keep), set(keep))


async def test_a_worker_cut_off_from_the_database_for_good_fails_announced_then_resumes(
    postgres_fault_server: LocalServer, monkeypatch: pytest.MonkeyPatch, record: Record
) -> None:
    """The network between the worker and the database breaks, longer than a batch
    waits (shortened to 3 s here; 180 s as shipped): the cleanup stops, says so (event
    and Slack), its counts are what went, and the next cleanup deletes the rest."""
    server = postgres_fault_server
    flow, keep = await seeded(server)
    monkeypatch.setattr(flows.cleanup.patience, "PATIENCE_SECONDS", 3.0)
    tcp = TcpProxy("127.0.0.1", 5432).start()
    through = server.database_url.replace(":5432/", f":{tcp.port}/")
    running = asyncio.create_task(
        cleanup(
            server,
            "database",
            monkeypatch,
            database_url=through,
            flows=[flow],
            **ONE_RUN_A_BATCH,
        )
    )
    try:
        await once_deleting(server, flow)
        tcp.cut()
        with pytest.raises(DeletionFailed) as failed:
            await running
    finally:
        tcp.stop()
    progress = failed.value.progress
    gone_first = DOOMED + len(keep) - await count(server.api_url, flow)
    announced = await wait_for_events(
        server.api_url,
        {"event": {"name": ["janitor.deletion.failed"]}},
        lambda events: bool(events),
    )
    monkeypatch.setattr(flows.cleanup.patience, "PATIENCE_SECONDS", 180.0)
    after = await cleanup(server, "database", monkeypatch, flows=[flow], approval="none")

    kept = await surviving(server.api_url, keep)
    assert after.summary is not None
    record(
        Figure(
            "worker cut off from the database for good mid-deletion",
            backend_of(server),
            "database",
            approved=progress.target,
            deleted=gone_first,
            outside_approval=len(keep) - len(kept),
            locked_out=after.outcome is CleanupOutcome.SKIPPED,
            lost=len(keep) - len(kept),
            announced="janitor.deletion.failed; the next cleanup deleted the rest",
        )
    )
    assert 0 < progress.deleted < DOOMED
    # The cut can fall between a batch's COMMIT and its answer: that batch may or may
    # not have gone, and nobody can look. It is counted apart (unconfirmed), never as
    # deleted, and what went lies between the two.
    assert progress.deleted <= gone_first <= progress.deleted + progress.unconfirmed, (
        "the failed cleanup's count is what went"
    )
    assert progress.unconfirmed <= 1, "at most the one batch (batch_size=1) is unknown"
    (payload,) = [event["payload"] for event in announced]
    assert (payload["deleted"], payload["unconfirmed"]) == (
        progress.deleted,
        progress.unconfirmed,
    )
    assert after.outcome is CleanupOutcome.DELETED
    assert after.summary.deleted == DOOMED - gone_first
    assert (await count(server.api_url, flow), kept) == (len(keep), set(keep))


async def test_a_statement_that_outlives_the_10_s_timeout_finishes(
    postgres_fault_server: LocalServer, monkeypatch: pytest.MonkeyPatch, record: Record
) -> None:
    """Another session holds the log table for 13 s: the batch's log delete waits longer
    than Prefect's API statement timeout (10 s), and must finish, not fail."""
    server = postgres_fault_server
    flow, keep = await seeded(server)
    running = asyncio.create_task(
        cleanup(
            server,
            "database",
            monkeypatch,
            flows=[flow],
            **ONE_RUN_A_BATCH,
        )
    )
    await once_deleting(server, flow)
    holder = await asyncpg.connect(f"{POSTGRES_DSN}/{database_name(server)}")
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE log IN ACCESS EXCLUSIVE MODE")
            await asyncio.sleep(1)
            blocked_at = await count(server.api_url, flow)
            await asyncio.sleep(12)
            still = await count(server.api_url, flow)
    finally:
        await holder.close()
    report = await running

    kept = await surviving(server.api_url, keep)
    assert report.summary is not None
    record(
        Figure(
            "a statement waiting 13 s (PostgreSQL's API timeout is 10 s)",
            backend_of(server),
            "database",
            approved=report.summary.approved,
            deleted=report.summary.deleted,
            outside_approval=len(keep) - len(kept),
            locked_out=False,
            lost=len(keep) - len(kept),
            announced="none needed: janitor.deletion.completed",
        )
    )
    assert blocked_at == still > len(keep), "a batch waited on the lock for 12 s"
    assert report.outcome is CleanupOutcome.DELETED
    assert (report.summary.deleted, report.summary.failed) == (DOOMED, 0)
    assert kept == set(keep)


async def test_sqlite_locked_by_another_writer_is_waited_for(
    sqlite_fault_server: LocalServer, monkeypatch: pytest.MonkeyPatch, record: Record
) -> None:
    """Another process holds SQLite's write lock for 20 s, longer than a batch waits for
    it (5 s) before "database is locked": the batch is tried again, not given up."""
    server = sqlite_fault_server
    flow, keep = await seeded(server)
    running = asyncio.create_task(
        cleanup(
            server,
            "database",
            monkeypatch,
            flows=[flow],
            **ONE_RUN_A_BATCH,
        )
    )
    await once_deleting(server, flow)
    path = server.database_url.split(":///", 1)[1]
    held = await asyncio.to_thread(hold_write_lock, path, 20)
    report = await running

    kept = await surviving(server.api_url, keep)
    assert report.summary is not None
    record(
        Figure(
            "SQLite locked by another writer for 20 s",
            backend_of(server),
            "database",
            approved=report.summary.approved,
            deleted=report.summary.deleted,
            outside_approval=len(keep) - len(kept),
            locked_out=False,
            lost=len(keep) - len(kept),
            announced="none needed: waited out",
        )
    )
    assert held >= 20
    assert report.outcome is CleanupOutcome.DELETED
    assert (report.summary.deleted, report.summary.failed) == (DOOMED, 0)
    assert kept == set(keep)
    assert report.flow_run_id is not None
    assert await events_of(server.api_url, report.flow_run_id, "janitor.deletion.completed")
