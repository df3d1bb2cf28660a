"""Task runs made outside any flow run: nothing else ever deletes them.

Tasks called directly, ``.delay()`` and background tasks served by ``serve``
write task runs with no flow run; Prefect's vacuum only follows flow runs, so
they stay for good. This target takes those in a terminal state that ended
before the cutoff and carry no protected tag, with their states, logs and
artifacts. Batches walk ``ix_task_run__end_time_desc`` from the oldest end,
each starting where the last one stopped (a keyset cursor), so the task runs
that stay (those of a flow run, protected ones) are passed once, not once per
batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flows.cleanup.selection import tags_match
from flows.cleanup.targets.artifacts import delete_artifacts
from flows.cleanup.targets.batches import count_by, delete_by
from flows.cleanup.targets.target import ROWS_SCALE, Rows
from flows.database import Database

if TYPE_CHECKING:
    import sqlalchemy as sa
    from prefect.server.database import PrefectDBInterface


@dataclass
class TaskRunsWithoutFlow:
    """Terminal task runs without a flow run, ended before ``cutoff``."""

    cutoff: datetime
    states: tuple[str, ...]
    protected_tags: tuple[str, ...] = ()
    key: str = "task_runs"
    title: str = "task runs without a flow run"
    tables: tuple[str, ...] = ("task_run",)
    batch_scale: int = ROWS_SCALE
    _after: tuple[datetime, Any] | None = field(default=None, repr=False)

    def condition(self, db: PrefectDBInterface) -> sa.ColumnElement[bool]:
        import sqlalchemy as sa

        conditions: list[Any] = [
            db.TaskRun.flow_run_id.is_(None),
            db.TaskRun.state_type.in_(self.states),
            db.TaskRun.end_time.is_not(None),
            db.TaskRun.end_time < self.cutoff,
        ]
        if self.protected_tags:
            conditions.append(sa.not_(tags_match(db, db.TaskRun.tags, self.protected_tags)))
        return sa.and_(*conditions)

    async def count(self, database: Database) -> Rows:
        import sqlalchemy as sa

        db = database.db
        going = sa.select(db.TaskRun.id).where(self.condition(db))
        rows = Rows()
        async with database.session() as session:
            rows["task_run"] = int(
                await session.scalar(sa.select(sa.func.count()).select_from(going.subquery())) or 0
            )
            if rows["task_run"]:
                for table, column in _children(db):
                    rows[table] = int(
                        await session.scalar(sa.select(sa.func.count()).where(column.in_(going)))
                        or 0
                    )
        return +rows

    async def delete_batch(self, database: Database, size: int) -> Rows | None:
        import sqlalchemy as sa

        db = database.db
        rows = Rows()
        query = sa.select(db.TaskRun.id, db.TaskRun.end_time).where(self.condition(db))
        if self._after is not None:
            end, last = self._after
            query = query.where(
                sa.or_(
                    db.TaskRun.end_time > end,
                    sa.and_(db.TaskRun.end_time == end, db.TaskRun.id > last),
                )
            )
        query = query.order_by(db.TaskRun.end_time, db.TaskRun.id).limit(size)
        if database.dialect == "postgresql":
            query = query.with_for_update()  # a run tagged meanwhile waits, then stays
        async with database.transaction() as session:
            found = (await session.execute(query)).all()
            if not found:
                return None
            self._after = (found[-1].end_time, found[-1].id)
            ids = [row.id for row in found]
            # States cascade from task_run; counted first so the report is exact.
            rows["task_run_state"] = await count_by(session, db.TaskRunState.task_run_id, ids)
            rows["log"] = await delete_by(session, db.Log.task_run_id, ids)
            rows["artifact"] = await delete_artifacts(session, db, db.Artifact.task_run_id, ids)
            rows["task_run"] = await delete_by(session, db.TaskRun.id, ids)
        return +rows


def _children(db: PrefectDBInterface) -> list[tuple[str, Any]]:
    return [
        ("task_run_state", db.TaskRunState.task_run_id),
        ("log", db.Log.task_run_id),
        ("artifact", db.Artifact.task_run_id),
    ]
