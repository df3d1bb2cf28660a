"""The measurements of ``bench_retention.py``, each run in a subprocess of it on its own copy.

The child deletes the old events one way and reports how many went, how long
that took, the preview's count time (the cleanup only), its peak memory, and
the longest wait of a writer beside it (``benchwriter``).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchwriter import Writer

RETENTION = timedelta(days=7)


async def child(method: str, batch_size: int, batch_seconds: float) -> dict[str, float]:
    import sqlalchemy as sa
    from prefect.server.database import provide_database_interface

    db = provide_database_interface()
    cutoff = datetime.now(UTC) - RETENTION
    count = sa.select(sa.func.count()).select_from(db.Event)
    async with db.session_context() as session:
        before = int(await session.scalar(count) or 0)
    preview = 0.0
    with Writer(os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"]) as writer:
        started = time.perf_counter()
        if method == "e":
            preview, started = await _ours(db, batch_size, batch_seconds)
        elif method == "v":
            from prefect.server.services.db_vacuum import vacuum_old_events

            await vacuum_old_events(db=db)
        else:
            engine = await db.engine()
            async with engine.begin() as conn:
                await conn.execute(
                    sa.delete(db.EventResource).where(db.EventResource.occurred < cutoff)
                )
                await conn.execute(sa.delete(db.Event).where(db.Event.occurred < cutoff))
        seconds = time.perf_counter() - started
    async with db.session_context() as session:
        deleted = before - int(await session.scalar(count) or 0)
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    return {
        "deleted": deleted,
        "seconds": seconds,
        "preview": preview,
        "peak_mb": int(status.split()[0]) / 1024,
        "writer_ms": writer.longest_ms,
    }


async def _ours(db: Any, batch_size: int, batch_seconds: float) -> tuple[float, float]:
    """The preview's count, timed, then the deletion; returns (preview s, deletion start)."""
    from flows.cleanup.deletion import DeletionProgress, delete_targets
    from flows.cleanup.policy import EventRule
    from flows.cleanup.targets.events import Events, event_retentions, event_types
    from flows.database import Database

    dialect = db.database_config.connection_url.split(":", 1)[0].split("+", 1)[0]
    database = Database(db, dialect)
    at = datetime.now(UTC)
    started = time.perf_counter()
    rule = EventRule(types=["*"], retention_days=RETENTION.days)
    target = Events(tuple(event_retentions([rule], await event_types(database), at)))
    await target.count(database)
    preview = time.perf_counter() - started
    deletion = time.perf_counter()
    # The cleanup's own loop: batches sized as a cleanup sizes them, no cap in reach.
    await delete_targets(
        [target],
        database,
        DeletionProgress(target=0),
        batch_size=batch_size,
        batch_seconds=batch_seconds,
        max_rows=10**12,
    )
    return preview, deletion
