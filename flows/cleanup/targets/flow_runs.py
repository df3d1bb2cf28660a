"""Flow runs in the database: a batch of approved ids, with every row that goes with them.

Deleting a flow run takes, by cascade, its states, its task runs and theirs,
and its run inputs; its logs and artifacts have no foreign key, so the same
transaction deletes them, artifacts with their collections kept right. Each
table's rows are counted by the database as they go (``delete_flow_runs``), so
the report says per table what went, and it equals what the preview counted
for the same runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flows.archive import active, archived
from flows.cleanup.targets.artifacts import delete_artifacts
from flows.cleanup.targets.batches import chunked, delete_by, delete_where
from flows.cleanup.targets.target import Rows

if TYPE_CHECKING:
    import sqlalchemy as sa
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
"""Rows the database deletes with a flow run (ON DELETE CASCADE)."""


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


async def delete_flow_runs(
    session: AsyncSession, db: PrefectDBInterface, wanted: Sequence[sa.ColumnElement[bool]]
) -> tuple[list[Any], Rows]:
    """Delete the flow runs each condition of ``wanted`` names (checked again here, under
    lock) and everything that goes with them, in ``session``'s transaction; the runs
    that went, and the rows per table, as the database counted them.

    A plain DELETE, not Prefect's ``delete_flow_runs`` model: that one loads every
    run with its state to free deployment concurrency slots, which only Pending,
    Running and Cancelling runs hold, and a cleanup deletes finished runs only
    (checked again, under lock, in this very transaction).

    Counting what a cascade took costs as much as the delete if done by counting
    first, so each database counts its own way. PostgreSQL deletes the runs that
    still qualify in one statement that returns their ids (the row locks it takes
    make the check and the delete one step), lets the cascade run (fast there), and
    reads how many rows this transaction deleted per table from its own statistics
    (``pg_stat_get_xact_tuples_deleted``). SQLite runs a foreign-key action row by
    row, so it selects the runs, deletes their children first, a set at a time,
    each statement counted, and the cascade then finds nothing (measured at 20k
    runs: about 1.5x faster than the cascade, with no count queries).
    """
    import sqlalchemy as sa

    writer = active()
    postgres = session.get_bind().dialect.name == "postgresql"
    if not postgres or writer is not None:
        # The runs that still qualify, selected under the write lock (SQLite) or
        # locked (PostgreSQL), then archived at once with all that goes with them,
        # before a state's delete empties its run's ``state_id`` (ON DELETE SET NULL).
        select = sa.select(db.FlowRun.id)
        if postgres:
            select = select.with_for_update()
        ids = [
            run_id
            for condition in wanted
            for run_id in (await session.execute(select.where(condition))).scalars()
        ]
        if ids and writer is not None:
            await writer.keep_flow_runs(session, db, ids)
        if not postgres:
            return ids, (await _delete_children_first(session, db, ids)) if ids else Rows()
        if not ids:
            return ids, Rows()
        wanted = [db.FlowRun.id.in_(part) for part in chunked(ids)]
    before = await _deleted_so_far(session)
    ids = []
    for condition in wanted:
        # While archiving, kept to the runs archived (``flows.archive.writer``).
        kept = await archived(session, db.FlowRun, condition)
        if kept is None:
            continue
        gone = sa.delete(db.FlowRun).where(kept).returning(db.FlowRun.id)
        ids.extend(
            (await session.execute(gone.execution_options(synchronize_session=False))).scalars()
        )
    if not ids:
        return ids, Rows()
    rows = Rows()
    rows["flow_run"] = len(ids)
    rows["log"] = await delete_by(session, db.Log.flow_run_id, ids)
    rows["artifact"] = await delete_artifacts(session, db, db.Artifact.flow_run_id, ids)
    after = await _deleted_so_far(session)
    for table in CASCADED:
        rows[table] = after[table] - before[table]
    return ids, +rows


async def _deleted_so_far(session: AsyncSession) -> dict[str, int]:
    """Rows this transaction has deleted so far from each cascaded table (PostgreSQL)."""
    import sqlalchemy as sa

    # regclass resolves each name as Prefect's own statements do (search_path).
    columns = ", ".join(
        f"pg_stat_get_xact_tuples_deleted('{table}'::regclass) AS {table}" for table in CASCADED
    )
    row = (await session.execute(sa.text(f"SELECT {columns}"))).one()
    return {table: int(getattr(row, table)) for table in CASCADED}


async def _delete_children_first(
    session: AsyncSession, db: PrefectDBInterface, ids: list[Any]
) -> Rows:
    import sqlalchemy as sa

    rows = Rows()
    for part in chunked(ids):
        task_runs = sa.select(db.TaskRun.id).where(db.TaskRun.flow_run_id.in_(part))
        rows["task_run_state"] += await delete_where(
            session, db.TaskRunState, db.TaskRunState.task_run_id.in_(task_runs)
        )
        rows["task_run"] += await delete_where(
            session, db.TaskRun, db.TaskRun.flow_run_id.in_(part)
        )
        rows["flow_run_input"] += await delete_where(
            session, db.FlowRunInput, db.FlowRunInput.flow_run_id.in_(part)
        )
        rows["flow_run_state"] += await delete_where(
            session, db.FlowRunState, db.FlowRunState.flow_run_id.in_(part)
        )
        rows["log"] += await delete_where(session, db.Log, db.Log.flow_run_id.in_(part))
    rows["artifact"] = await delete_artifacts(session, db, db.Artifact.flow_run_id, ids)
    rows["flow_run"] = await delete_by(session, db.FlowRun.id, ids)
    return +rows
