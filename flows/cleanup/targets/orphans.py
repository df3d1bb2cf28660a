"""Rows whose flow run is gone: logs, artifacts, task runs and run inputs.

Logs and artifacts have no foreign key to ``flow_run``, so a flow run deleted
by hand, by an old vacuum, or by a cleanup killed between its statements can
leave them behind. Task runs and run inputs do cascade, unless foreign keys
were off when their run went. Finding orphans by an anti-join per batch would
read the whole child table every time; instead each table's distinct
``flow_run_id`` values are walked in key order along their index, a bounded
page at a time, and a page's runs that no longer exist have their rows
deleted through the same index, a bounded batch per transaction, each
checked again (``NOT EXISTS``) as it goes. Rows younger than the grace are
left: a run's logs can reach the server before the run itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flows.cleanup.policy import TERMINAL
from flows.cleanup.selection import tags_match
from flows.cleanup.targets.artifacts import reconcile_collections
from flows.cleanup.targets.batches import count_by, delete_where
from flows.cleanup.targets.target import ROWS_SCALE, Rows
from flows.database import Database

if TYPE_CHECKING:
    import sqlalchemy as sa
    from prefect.server.database import PrefectDBInterface
    from sqlalchemy.ext.asyncio import AsyncSession

RUNS_PER_PAGE = 200
TABLES = ("log", "artifact", "task_run", "flow_run_input")


def _model(db: PrefectDBInterface, table: str) -> tuple[Any, Any]:
    """The table's model and the column its grace is measured on."""
    model: Any = {
        "log": db.Log,
        "artifact": db.Artifact,
        "task_run": db.TaskRun,
        "flow_run_input": db.FlowRunInput,
    }[table]
    return model, model.timestamp if table == "log" else model.created


@dataclass
class Orphans:
    """Rows of ``TABLES`` whose flow run no longer exists, older than ``before``."""

    before: datetime
    protected_tags: tuple[str, ...] = ()
    key: str = "orphans"
    title: str = "orphans (rows whose flow run is gone)"
    tables: tuple[str, ...] = TABLES
    batch_scale: int = ROWS_SCALE
    _step: int = field(default=0, repr=False)
    _cursor: Any = field(default=None, repr=False)
    _orphaned: list[Any] = field(default_factory=list, repr=False)

    def _orphan_rows(self, db: PrefectDBInterface, table: str, runs: list[Any]) -> sa.Select[Any]:
        import sqlalchemy as sa

        model, age = _model(db, table)
        conditions = [
            model.flow_run_id.in_(runs),
            age < self.before,
            ~sa.exists().where(db.FlowRun.id == model.flow_run_id),
        ]
        if table == "task_run":  # the invariants of every target: finished, unprotected
            conditions.append(model.state_type.in_(TERMINAL))
            if self.protected_tags:
                conditions.append(sa.not_(tags_match(db, model.tags, self.protected_tags)))
        return sa.select(model.id).where(*conditions)

    async def _orphaned_page(
        self, session: AsyncSession, db: PrefectDBInterface, table: str, after: Any
    ) -> tuple[list[Any], Any]:
        """The next page of the table's flow-run ids whose run is gone, and the cursor."""
        import sqlalchemy as sa

        model, _ = _model(db, table)
        query = sa.select(model.flow_run_id).where(model.flow_run_id.is_not(None))
        if after is not None:
            query = query.where(model.flow_run_id > after)
        page = list(
            (
                await session.execute(
                    query.distinct().order_by(model.flow_run_id).limit(RUNS_PER_PAGE)
                )
            )
            .scalars()
            .all()
        )
        if not page:
            return [], None
        existing = set(
            (await session.execute(sa.select(db.FlowRun.id).where(db.FlowRun.id.in_(page))))
            .scalars()
            .all()
        )
        return [run for run in page if run not in existing], page[-1]

    async def count(self, database: Database) -> Rows:
        import sqlalchemy as sa

        db = database.db
        rows = Rows()
        async with database.session() as session:
            for table in TABLES:
                cursor: Any = None
                while True:
                    orphaned, cursor = await self._orphaned_page(session, db, table, cursor)
                    if orphaned:
                        going = self._orphan_rows(db, table, orphaned)
                        rows[table] += int(
                            await session.scalar(
                                sa.select(sa.func.count()).select_from(going.subquery())
                            )
                            or 0
                        )
                        if table == "task_run":
                            rows["task_run_state"] += await count_by(
                                session,
                                db.TaskRunState.task_run_id,
                                list((await session.execute(going)).scalars()),
                            )
                    if cursor is None:
                        break
        return +rows

    async def delete_batch(self, database: Database, size: int) -> Rows | None:
        db = database.db
        while self._step < len(TABLES):
            table = TABLES[self._step]
            if self._orphaned:
                rows = await self._delete(database, table, size)
                if rows is not None:
                    return rows
                self._orphaned = []
            if self._cursor is False:  # this table is walked through
                self._step, self._cursor = self._step + 1, None
                continue
            async with database.session() as session:
                self._orphaned, cursor = await self._orphaned_page(session, db, table, self._cursor)
            self._cursor = False if cursor is None else cursor
        return None

    async def _delete(self, database: Database, table: str, size: int) -> Rows | None:
        """One batch of the current page's orphans of ``table``; ``None`` when none is left."""
        import sqlalchemy as sa

        db = database.db
        model, _ = _model(db, table)
        query = self._orphan_rows(db, table, self._orphaned).limit(size)
        if database.dialect == "postgresql":
            query = query.with_for_update()
        async with database.transaction() as session:
            ids = list((await session.execute(query)).scalars())
            if not ids:
                return None
            rows = Rows()
            if table == "task_run":  # states cascade: counted before they go
                rows["task_run_state"] = await count_by(session, db.TaskRunState.task_run_id, ids)
            keys: list[Any] = []
            if table == "artifact":
                found = await session.execute(
                    sa.select(db.Artifact.key)
                    .where(db.Artifact.id.in_(ids), db.Artifact.key.is_not(None))
                    .distinct()
                )
                keys = list(found.scalars())
            # Checked once more as it goes: a run made meanwhile with this id keeps its rows.
            rows[table] = await delete_where(
                session,
                model,
                sa.and_(model.id.in_(ids), ~sa.exists().where(db.FlowRun.id == model.flow_run_id)),
            )
            if keys:
                await reconcile_collections(session, db, keys)
        return +rows
