"""Writing an archive while a cleanup deletes: every row, before its delete commits.

Deletion code does not call the archive batch by batch. Every delete of a
cleanup goes through one helper (``flows.cleanup.targets.batches``), which
asks ``archived`` first: while a target is being archived, the rows the
delete's condition names are archived in the deleting transaction, with the
rows the database will delete with them by cascade (a flow run's states, task
runs and inputs; a task run's states). A batch of flow runs is archived at
once, before its first delete (``keep_flow_runs``): a state's delete would
empty its run's ``state_id``, and one statement per table is cheaper than
one per delete.

The database writes the rows as JSON lines itself, one string per statement
(``flows.archive.codec``), and a thread compresses them while the next
statement runs. Just before the transaction commits
(``flows.database.BEFORE_COMMIT``) they become one file of the store,
written durably; if that fails, the transaction rolls back and the deletion
stops, so nothing unarchived is ever deleted.

On SQLite the transaction holds the write lock from its first statement, so
the rows read are the rows deleted. On PostgreSQL the rows are read with
their ids (the batch's own rows ``FOR UPDATE``), and each delete is kept to
the ids archived, so a row that came to match in between is not deleted
without its archive.

A batch tried again after a lost commit answer may archive rows twice, and a
batch that rolled back may leave rows in the archive that were not deleted;
a restore inserts only rows that are not there, so neither loses or doubles
anything.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flows.archive.codec import lines, source
from flows.archive.index import (
    INDEX,
    PART_SUFFIX,
    ArchiveIndex,
    TargetEntry,
    archive_name,
    schema_revision,
)
from flows.archive.store import Store
from flows.database import BEFORE_COMMIT, Database
from flows.errors import ArchiveError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import AsyncSession

COMPRESS_LEVEL = 1
"""gzip level: rows of JSON shrink about eightfold even at 1, at a fraction of 6's time."""

CASCADES: dict[str, tuple[tuple[str, str], ...]] = {
    "flow_run": (
        ("flow_run_state", "flow_run_id"),
        ("task_run", "flow_run_id"),
        ("flow_run_input", "flow_run_id"),
    ),
    "task_run": (("task_run_state", "task_run_id"),),
}
"""Rows the database deletes with a row of a table (ON DELETE CASCADE): archived with it."""

_ACTIVE: ContextVar[tuple[ArchiveWriter, str] | None] = ContextVar("janitor_archive", default=None)


class _Batch:
    """One transaction's archived rows, compressed as they come: on a thread of their
    own, in order, while the database writes the next table's rows (zlib lets go of
    the GIL), so the two cores both work."""

    def __init__(self, session: AsyncSession, compressing: ThreadPoolExecutor) -> None:
        self.session = session
        self.compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, 31)
        self.compressing = compressing
        self.chunks: list[Future[bytes]] = []
        self.rows: dict[str, int] = {}
        self.ids: dict[str, list[Any]] = {}
        """PostgreSQL: the ids archived per table, to which its deletes are kept."""
        self.covered = False
        """Everything this transaction deletes is archived already (``keep_flow_runs``)."""

    def add(self, table: str, text: str, count: int, ids: Sequence[Any] | None) -> None:
        self.chunks.append(self.compressing.submit(self._compress, text))
        self.rows[table] = self.rows.get(table, 0) + count
        if ids is not None:
            self.ids.setdefault(table, []).extend(ids)

    def _compress(self, text: str) -> bytes:
        return self.compressor.compress(text.encode() + b"\n")

    async def data(self) -> bytes:
        """The batch's file: every chunk, in order, and the gzip trailer."""
        import asyncio

        chunks = [await asyncio.wrap_future(chunk) for chunk in self.chunks]
        tail = await asyncio.wrap_future(self.compressing.submit(self.compressor.flush))
        return b"".join(chunks) + tail


class ArchiveWriter:
    """The archive of one cleanup in ``store``; ``target`` scopes what is archived."""

    def __init__(self, store: Store, index: ArchiveIndex) -> None:
        self.store = store
        self.index = index
        self._batch: _Batch | None = None
        self._compressing = ThreadPoolExecutor(1, thread_name_prefix="janitor-archive")

    @classmethod
    async def open(
        cls,
        store: Store,
        database: Database,
        *,
        manifest_hash: str,
        cleanup_flow_run_id: UUID | None,
    ) -> ArchiveWriter:
        """Write the index of a new archive; ``ArchiveError`` when the store refuses."""
        import prefect

        index = ArchiveIndex(
            name="",
            cleanup_flow_run_id=cleanup_flow_run_id,
            manifest_hash=manifest_hash,
            prefect_version=prefect.__version__,
            schema_revision=await schema_revision(database),
            dialect=database.dialect,
        )
        index.name = archive_name(index.made_at, cleanup_flow_run_id)
        db = database.db
        for model in (
            db.Flow,
            db.FlowRun,
            db.FlowRunState,
            db.TaskRun,
            db.TaskRunState,
            db.FlowRunInput,
            db.Log,
            db.Artifact,
            db.ArtifactCollection,
            db.Event,
            db.EventResource,
        ):
            table: Any = model.__table__
            index.tables[table.name] = [column.name for column in table.columns]
        writer = cls(store, index)
        await writer._write_index()
        return writer

    @property
    def where(self) -> str:
        return f"{self.store.where}/{self.index.name}"

    async def _write_index(self) -> None:
        data = self.index.model_dump_json(indent=2).encode()
        try:
            await self.store.write(f"{self.index.name}/{INDEX}", data)
        except Exception as exc:
            raise _unwritable(self.store, exc) from exc

    @contextmanager
    def target(self, key: str) -> Iterator[None]:
        """While inside, every delete of the cleanup archives its rows under ``key``."""
        self.index.targets.setdefault(key, TargetEntry())
        active = _ACTIVE.set((self, key))
        hook = BEFORE_COMMIT.set(self._flush)
        try:
            yield
        finally:
            BEFORE_COMMIT.reset(hook)
            _ACTIVE.reset(active)

    async def close(self) -> None:
        """Mark the archive complete, with its counts."""
        self.index.complete = True
        self._compressing.shutdown(wait=False)
        await self._write_index()

    async def checkpoint(self) -> None:
        """Write the counts so far into the index of an archive left incomplete."""
        await self._write_index()

    def _batch_of(self, session: AsyncSession) -> _Batch:
        # A batch left by a transaction that rolled back is dropped: its rows stayed.
        if self._batch is None or self._batch.session is not session:
            self._batch = _Batch(session, self._compressing)
        return self._batch

    async def keep(
        self, session: AsyncSession, model: Any, condition: sa.ColumnElement[bool]
    ) -> list[Any] | int:
        """Archive the rows ``condition`` names in ``model``'s table, and what cascades
        with them: their ids on PostgreSQL, else how many."""
        table = model.__table__
        postgres = session.get_bind().dialect.name == "postgresql"
        batch = self._batch_of(session)
        kept = await self._keep_rows(session, batch, table, condition, lock=True)
        if kept:
            await self._cascades(session, batch, table, condition, kept, postgres)
        return kept

    async def keep_flow_runs(self, session: AsyncSession, db: Any, ids: Sequence[Any]) -> None:
        """Archive a batch of flow runs with every row that goes with them (cascaded or
        deleted beside them: logs, artifacts, the collections they move) and the runs'
        flows (which stay, and which a restore needs), once, by index; the deletes of
        this transaction then archive nothing more."""
        import sqlalchemy as sa

        postgres = session.get_bind().dialect.name == "postgresql"
        batch = self._batch_of(session)
        step = len(ids) if postgres else 500  # SQLite: a bounded id list per statement
        for start in range(0, len(ids), step):
            part = list(ids[start : start + step])
            runs = _among(db.FlowRun.id, part) if postgres else db.FlowRun.id.in_(part)
            of_runs = _among if postgres else _in
            task_runs = sa.select(db.TaskRun.id).where(of_runs(db.TaskRun.flow_run_id, part))
            artifacts = sa.select(db.Artifact.id).where(of_runs(db.Artifact.flow_run_id, part))
            # (model, rows, locked, deleted by a statement of ours). The runs are held
            # already (SQLite's write lock; PostgreSQL: FOR UPDATE), so no state, task
            # run or input can join them; task runs are locked so no state joins those.
            # What the cascade deletes needs no ids; what our deletes take is kept to
            # the ids read here.
            wanted: list[tuple[Any, Any, bool, bool]] = [
                (db.FlowRun, runs, False, True),
                (db.FlowRunState, of_runs(db.FlowRunState.flow_run_id, part), False, False),
                (db.TaskRun, of_runs(db.TaskRun.flow_run_id, part), True, False),
                (db.TaskRunState, db.TaskRunState.task_run_id.in_(task_runs), False, False),
                (db.FlowRunInput, of_runs(db.FlowRunInput.flow_run_id, part), False, False),
                (db.Log, of_runs(db.Log.flow_run_id, part), False, True),
                (db.Artifact, of_runs(db.Artifact.flow_run_id, part), False, True),
                (
                    db.ArtifactCollection,
                    db.ArtifactCollection.latest_id.in_(artifacts),
                    False,
                    True,
                ),
                (db.Flow, db.Flow.id.in_(sa.select(db.FlowRun.flow_id).where(runs)), False, False),
            ]
            for model, condition, lock, deleted in wanted:
                await self._keep_rows(
                    session, batch, model.__table__, condition, lock=lock, with_ids=deleted
                )
        batch.covered = True

    async def _keep_rows(
        self,
        session: AsyncSession,
        batch: _Batch,
        table: Any,
        condition: sa.ColumnElement[bool],
        *,
        lock: bool,
        with_ids: bool = True,
    ) -> list[Any] | int:
        """One statement: the rows as JSON lines, written by the database; their ids on
        PostgreSQL (read ``FOR UPDATE``), else how many."""
        import sqlalchemy as sa

        dialect = session.get_bind().dialect.name
        rows = source(table, condition, dialect, lock=lock)
        columns: list[Any] = [lines(table, rows, dialect), sa.func.count()]
        ids_wanted = dialect == "postgresql" and with_ids
        if ids_wanted:
            columns.append(sa.func.array_agg(rows.c.id))

        found = (await session.execute(sa.select(*columns).select_from(rows))).one()
        count = int(found[1] or 0)
        ids = list(found[2] or []) if ids_wanted else None
        if count:
            batch.add(table.name, found[0], count, ids)
        return ids if ids is not None else count

    async def _cascades(
        self,
        session: AsyncSession,
        batch: _Batch,
        table: Any,
        condition: sa.ColumnElement[bool],
        kept: list[Any] | int,
        postgres: bool,
    ) -> None:
        import sqlalchemy as sa

        for child_name, column in CASCADES.get(table.name, ()):
            child = table.metadata.tables[child_name]
            if postgres and isinstance(kept, list):
                where = _among(child.c[column], kept)
            else:  # the same rows, without sending their ids back
                where = child.c[column].in_(sa.select(table.c.id).where(condition))
            child_kept = await self._keep_rows(session, batch, child, where, lock=True)
            if child_kept:
                await self._cascades(session, batch, child, where, child_kept, postgres)

    async def _flush(self, session: AsyncSession) -> None:
        """Just before ``session`` commits: its rows become one durable file."""
        batch = self._batch
        self._batch = None
        active = _ACTIVE.get()
        if batch is None or batch.session is not session or not batch.rows or active is None:
            return
        _, key = active
        entry = self.index.targets.setdefault(key, TargetEntry())
        path = f"{self.index.name}/{key}/{entry.parts + 1:06d}{PART_SUFFIX}"

        data = await batch.data()
        try:
            await self.store.write(path, data)
        except Exception as exc:
            raise _unwritable(self.store, exc) from exc
        entry.parts += 1
        for table, count in batch.rows.items():
            entry.rows[table] = entry.rows.get(table, 0) + count


def _among(column: Any, ids: Sequence[Any]) -> Any:
    """``column = ANY(:ids)``: one parameter however many ids (PostgreSQL)."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    array = sa.bindparam(None, list(ids), type_=postgresql.ARRAY(postgresql.UUID(as_uuid=True)))
    return column == sa.any_(array)


def _in(column: Any, ids: Sequence[Any]) -> Any:
    return column.in_(ids)


def active() -> ArchiveWriter | None:
    """The archive the current deletion writes to, if any."""
    found = _ACTIVE.get()
    return found[0] if found else None


def _unwritable(store: Store, exc: Exception) -> ArchiveError:
    return ArchiveError(
        f"the archive could not be written to {store.where} ({type(exc).__name__}: {exc}); "
        "the batch was not deleted",
        "free space or fix the permissions of the archive's folder or block and run the "
        "cleanup again, or set archive: none to delete without an archive",
    )


async def archived(
    session: AsyncSession, model: Any, condition: sa.ColumnElement[bool]
) -> sa.ColumnElement[bool] | None:
    """What a delete of ``condition`` from ``model`` may delete: ``condition`` itself when
    nothing is being archived; else its rows are archived first (unless this
    transaction's batch archived them already), and on PostgreSQL the condition is
    kept to the rows archived, by id. ``None`` when nothing may go."""
    import sqlalchemy as sa

    writer = active()
    if writer is None:
        return condition
    postgres = session.get_bind().dialect.name == "postgresql"
    batch = writer._batch_of(session)
    if batch.covered:
        if not postgres:
            return condition
        ids = batch.ids.get(model.__table__.name)
        return sa.and_(_among(model.__table__.c.id, ids), condition) if ids else None
    kept = await writer.keep(session, model, condition)
    if not kept:
        return None
    if postgres and isinstance(kept, list):
        return sa.and_(_among(model.__table__.c.id, kept), condition)
    return condition
