"""The measurements of ``bench_cleanup.py``, each run in a subprocess of it on its own copy.

The child reports what it deleted, how long that took, its peak memory and, for
the methods that delete in-process, the longest wait of a writer beside it
(``benchwriter``); the parent compares. Each function deletes the same rows its own way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchwriter import Writer

RETENTION_DAYS = 30


async def child(method: str, args: argparse.Namespace) -> dict[str, float]:
    started = time.perf_counter()
    deleted, seconds = 0, 0.0
    # The in-process methods share the database with a writer beside them (benchwriter).
    url = os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL")
    writer = Writer(url) if url and method != "baseline" else None
    with writer or contextlib.nullcontext():
        if method == "baseline":
            import flows.cleanup  # noqa: F401  (what the cleanup imports, nothing run)
        elif method in ("a", "b"):
            deleted, seconds = await per_run_loop(args.slow_runs, 0.1 if method == "a" else 0)
        elif method == "vacuum":
            deleted, seconds = await prefect_vacuum()
        elif method == "sql":
            deleted, seconds = await set_based()
        elif method == "restore":
            await cleanup_flow("db", 10_000_000, args.batch_size)
            deleted, seconds = await restore_archive()
        else:
            limit = args.api_runs if method == "api" and args.api_runs else 10_000_000
            deleted, seconds = await cleanup_flow(method, limit, args.batch_size)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    peak_mb = int(status.split()[0]) / 1024  # kB
    total = time.perf_counter() - started
    waited = writer.longest_ms if writer else -1.0
    return {
        "deleted": deleted,
        "seconds": seconds,
        "peak_mb": peak_mb,
        "total": total,
        "writer_ms": waited,
    }


async def per_run_loop(limit: int, pause: float) -> tuple[int, float]:
    from prefect import get_client
    from prefect.client.schemas import filters
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    from flows.cleanup.policy import TERMINAL

    old = filters.FlowRunFilter(
        end_time=filters.FlowRunFilterEndTime(
            before_=datetime.now(UTC) - timedelta(days=RETENTION_DAYS)
        ),
        state={"type": {"any_": [StateType(state) for state in TERMINAL]}},
    )
    started = time.perf_counter()
    async with get_client() as client:
        runs: list[Any] = []
        while len(runs) < limit:
            page = await client.read_flow_runs(
                flow_run_filter=old,
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=min(200, limit - len(runs)),
                offset=len(runs),
            )
            runs += page
            if not page:
                break
        for run in runs:
            await client.delete_flow_run(run.id)
            if pause:
                await asyncio.sleep(pause)
    return len(runs), time.perf_counter() - started


async def cleanup_flow(method: str, limit: int, batch_size: int) -> tuple[int, float]:
    from flows.cleanup.config import RetentionConfig
    from flows.cleanup.flow import database_cleanup

    in_process = method in ("db", "bare")
    config = RetentionConfig(
        approval="none",
        retention_days=RETENTION_DAYS,
        max_runs=limit,
        batch_size=batch_size,
        deletion="auto" if in_process else "api",
        # (c) as it ships: archived first (to PREFECT_HOME); the API path cannot archive.
        archive="none" if method != "db" else {},
    )
    report = await database_cleanup(config)
    summary, path = report.summary, "database" if in_process else "api-bulk"
    if summary is None or summary.path != path or summary.error:
        raise RuntimeError(f"the cleanup did not delete on the {path} path: {report}")
    return summary.deleted, summary.duration_seconds


async def restore_archive() -> tuple[int, float]:
    """``scripts/restore.py``'s work on the archive the cleanup just wrote."""
    from flows.archive import Folder
    from flows.archive.restore import restore
    from flows.cleanup.archiving import default_folder
    from flows.database import Database

    (archive,) = list(default_folder().iterdir())
    report = await restore(Folder(archive.parent), archive.name, Database.configured())
    return report.restored.get("flow_run", 0), report.duration_seconds


async def prefect_vacuum() -> tuple[int, float]:
    import sqlalchemy as sa
    from prefect.server.database import provide_database_interface
    from prefect.server.services.db_vacuum import vacuum_old_flow_runs

    db = provide_database_interface()
    count = sa.select(sa.func.count()).select_from(db.FlowRun)
    async with db.session_context() as session:
        before = int(await session.scalar(count) or 0)
    started = time.perf_counter()
    await vacuum_old_flow_runs(db=db)
    seconds = time.perf_counter() - started
    async with db.session_context() as session:
        return before - int(await session.scalar(count) or 0), seconds


async def set_based() -> tuple[int, float]:
    import sqlalchemy as sa
    from prefect.server.database import provide_database_interface

    from flows.cleanup.policy import TERMINAL

    db = provide_database_interface()
    old = (
        sa.select(db.FlowRun.id)
        .where(
            db.FlowRun.parent_task_run_id.is_(None),
            db.FlowRun.state_type.in_(TERMINAL),
            db.FlowRun.end_time < datetime.now(UTC) - timedelta(days=RETENTION_DAYS),
        )
        .scalar_subquery()
    )
    started = time.perf_counter()
    engine = await db.engine()
    async with engine.begin() as conn:
        await conn.execute(sa.delete(db.Log).where(db.Log.flow_run_id.in_(old)))
        await conn.execute(sa.delete(db.Artifact).where(db.Artifact.flow_run_id.in_(old)))
        result = await conn.execute(sa.delete(db.FlowRun).where(db.FlowRun.id.in_(old)))
    return int(result.rowcount or 0), time.perf_counter() - started
