"""Flow runs in the database: a batch of approved ids, with every row that goes with them.

Deleting a flow run takes, by cascade, its states, its task runs and theirs,
and its run inputs; its logs and artifacts have no foreign key, so the same
transaction deletes them, artifacts with their collections kept right. Each
table's rows are counted in the transaction before they go, so the report
says per table what went, and it equals what the preview counted for the
same runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flows.cleanup.targets.artifacts import delete_artifacts
from flows.cleanup.targets.batches import chunked, delete_by
from flows.cleanup.targets.target import Rows

if TYPE_CHECKING:
    from prefect.server.database import PrefectDBInterface
    from sqlalchemy.ext.asyncio import AsyncSession


def _counts(db: PrefectDBInterface, part: Sequence[Any]) -> dict[str, Any]:
    """Per table, a count of the rows that go with the flow runs ``part``."""
    import sqlalchemy as sa

    task_runs = sa.select(db.TaskRun.id).where(db.TaskRun.flow_run_id.in_(part))
    return {
        "flow_run": sa.select(sa.func.count()).where(db.FlowRun.id.in_(part)),
        "flow_run_state": sa.select(sa.func.count()).where(db.FlowRunState.flow_run_id.in_(part)),
        "task_run": sa.select(sa.func.count()).where(db.TaskRun.flow_run_id.in_(part)),
        "task_run_state": sa.select(sa.func.count()).where(
            db.TaskRunState.task_run_id.in_(task_runs)
        ),
        "flow_run_input": sa.select(sa.func.count()).where(db.FlowRunInput.flow_run_id.in_(part)),
        "log": sa.select(sa.func.count()).where(db.Log.flow_run_id.in_(part)),
        "artifact": sa.select(sa.func.count()).where(db.Artifact.flow_run_id.in_(part)),
    }


CASCADED = ("flow_run_state", "task_run", "task_run_state", "flow_run_input")
"""Rows the database deletes with a flow run (ON DELETE CASCADE): counted before."""


async def count_rows(
    session: AsyncSession,
    db: PrefectDBInterface,
    ids: Sequence[Any],
    tables: Sequence[str] | None = None,
) -> Rows:
    """The rows that go with these flow runs, per table (the runs themselves included)."""
    rows = Rows()
    for part in chunked(ids):
        for table, query in _counts(db, part).items():
            if tables is None or table in tables:
                rows[table] += int(await session.scalar(query) or 0)
    return +rows


async def delete_flow_runs(session: AsyncSession, db: PrefectDBInterface, ids: list[Any]) -> Rows:
    """Delete these flow runs and everything that goes with them, in ``session``'s
    transaction; the rows per table that went.

    A plain DELETE, not Prefect's ``delete_flow_runs`` model: that one loads every
    run with its state to free deployment concurrency slots, which only Pending,
    Running and Cancelling runs hold, and a cleanup deletes finished runs only
    (checked again, under lock, in this very transaction).
    """
    if not ids:
        return Rows()
    rows = await count_rows(session, db, ids, CASCADED)
    rows["log"] = await delete_by(session, db.Log.flow_run_id, ids)
    rows["artifact"] = await delete_artifacts(session, db, db.Artifact.flow_run_id, ids)
    rows["flow_run"] = await delete_by(session, db.FlowRun.id, ids)
    return +rows
