"""Putting archived rows back, through Prefect's own tables, without overwriting anything.

A restore reads an archive's batch files table by table, parents first
(``ORDER``), and inserts each row as it was, every column, with ``INSERT ...
ON CONFLICT DO NOTHING``: a row that exists (restored before, or back by
other means) is left as it is and counted as present, so a restore run twice
restores nothing the second time. References are kept right:

- a reference to a table restored later (a run's current state, a subflow's
  parent task run, a state's result artifact) is inserted empty and set in a
  last pass, on the rows this restore left untouched since (same ``updated``),
  when the referenced row exists;
- a reference to a row that is gone for good (a deleted work queue) is
  cleared when the column may be empty, and the row is skipped (and counted)
  when it may not (a task run whose flow run is not there).

An archive from another schema is refused with the reason when a column it
holds is missing here or a column here cannot be left empty; a newer or
older Alembic revision is only reported. Memory is bounded by one batch
file's rows, not by the archive: the rows are read a file at a time, and the
last pass reads the files again.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, Field

from flows.archive.codec import decode, decoders, restored
from flows.archive.index import FORMAT, INDEX, PART_SUFFIX, ArchiveIndex, schema_revision
from flows.archive.store import Store
from flows.database import Database
from flows.errors import RestoreRefused

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

ORDER = (
    "flow",
    "flow_run",
    "flow_run_state",
    "task_run",
    "task_run_state",
    "flow_run_input",
    "log",
    "artifact",
    "artifact_collection",
    "events",
    "event_resources",
)
"""Parents before children."""
CHUNK = 500
"""Rows per insert statement and transaction, and ids per reference check."""
TARGETS = ("flow_runs", "task_runs", "events", "orphans")


class RestoreReport(BaseModel):
    """What a restore did (or, with ``dry_run``, would do)."""

    archive: str = Field(description="The archive restored from.")
    dry_run: bool = Field(False, description="Nothing was written.")
    targets: list[str] = Field(default_factory=list, description="The targets restored.")
    restored: dict[str, int] = Field(default_factory=dict, description="Rows put back, per table.")
    present: dict[str, int] = Field(
        default_factory=dict, description="Rows already there, left as they are, per table."
    )
    skipped: dict[str, int] = Field(
        default_factory=dict,
        description="Rows not put back because a row they need is gone for good, per table.",
    )
    cleared: dict[str, int] = Field(
        default_factory=dict,
        description="References to rows gone for good, left empty, per table.",
    )
    notes: list[str] = Field(default_factory=list, description="What a person should know.")
    duration_seconds: float = Field(0.0, description="Wall time.")

    @property
    def total(self) -> int:
        return sum(self.restored.values())


OnProgress = Callable[[RestoreReport, int, int], None]
"""Called after each batch file: the report so far, files done, files in all."""


async def read_index(store: Store, name: str) -> ArchiveIndex:
    try:
        data = await store.read(f"{name}/{INDEX}")
    except Exception as exc:
        raise RestoreRefused(
            f"no archive {name!r} in {store.where} ({type(exc).__name__}: {exc})",
            "name an archive folder that holds an index.json (scripts/restore.py --list)",
        ) from exc
    try:
        index = ArchiveIndex.model_validate_json(data)
    except Exception as exc:
        raise RestoreRefused(f"{name}/{INDEX} is not an archive index ({exc})") from exc
    if index.format != FORMAT:
        raise RestoreRefused(
            f"archive {name!r} is in format {index.format}; this version reads {FORMAT}",
            "restore it with the version of prefect-janitor that wrote it",
        )
    return index


def _compatible(index: ArchiveIndex, tables: dict[str, Any]) -> list[str]:
    """Why the archive does not fit these tables; empty when it does."""
    problems: list[str] = []
    for name, columns in index.tables.items():
        table = tables.get(name)
        if table is None:
            problems.append(f"table {name} does not exist here")
            continue
        missing = sorted(set(columns) - {column.name for column in table.columns})
        if missing:
            problems.append(f"{name} has no column {', '.join(missing)} here")
        required = sorted(
            column.name
            for column in table.columns
            if column.name not in columns
            and not column.nullable
            and column.default is None
            and column.server_default is None
        )
        if required:
            problems.append(f"{name}.{', '.join(required)} is required here but not archived")
    return problems


class _Plan:
    """Per table: its decoders, its references, and which are set in the last pass."""

    def __init__(self, table: Any, later: set[str], dialect: str) -> None:
        self.table = table
        self.decoders = decoders(table, dialect)
        self.deferred: dict[str, Any] = {}
        self.checked: dict[str, Any] = {}
        for key in table.foreign_keys:
            target = key.column.table
            if target.name in later or target.name == table.name:
                self.deferred[key.parent.name] = key.column
            else:
                self.checked[key.parent.name] = key.column


async def restore(
    store: Store,
    name: str,
    database: Database,
    *,
    targets: list[str] | None = None,
    runs: list[UUID] | None = None,
    dry_run: bool = False,
    on_progress: OnProgress | None = None,
) -> RestoreReport:
    """Put the rows of archive ``name`` back; ``runs`` restores only those flow runs
    with what belongs to them."""
    started = time.monotonic()
    index = await read_index(store, name)
    db = database.db
    tables = {table.name: table for table in db.Base.metadata.sorted_tables}
    problems = _compatible(index, tables)
    if problems:
        raise RestoreRefused(
            f"archive {name!r} does not fit this server's schema: {'; '.join(problems)}",
            "restore it on a server of the Prefect version that wrote it "
            f"({index.prefect_version})",
        )
    # The batch files say what is there: a cleanup stopped part-way never wrote its
    # final index, and each of its batches is still to be restored.
    files = [path for path in await store.files(name) if path.endswith(PART_SUFFIX)]
    held = sorted({path.split("/")[1] for path in files if path.count("/") == 2})
    if targets and (unknown := sorted(set(targets) - set(held))):
        raise RestoreRefused(
            f"archive {name!r} holds no {', '.join(unknown)}",
            f"choose among {', '.join(held) or 'nothing: it is empty'}",
        )
    chosen = [target for target in held if not targets or target in targets]
    report = RestoreReport(archive=name, dry_run=dry_run, targets=chosen)
    revision = await schema_revision(database)
    if index.schema_revision and revision and revision != index.schema_revision:
        report.notes.append(
            f"written at schema revision {index.schema_revision} (Prefect "
            f"{index.prefect_version}); this server is at {revision}: every column fits"
        )
    parts = [path for path in files if path.split("/")[1] in chosen]
    if not index.complete:
        report.notes.append("the cleanup stopped part-way: every batch it deleted is here")
    wanted = await _Wanted.of(store, parts, runs) if runs else None
    present_tables = [t for t in ORDER if t in index.tables]
    plans = {
        table_name: _Plan(tables[table_name], set(present_tables[position + 1 :]), index.dialect)
        for position, table_name in enumerate(present_tables)
    }
    # A batch's file holds whole families (a run with its states, task runs, logs and
    # flow), so a file at a time, parents first, keeps every reference that is not
    # deferred; the last pass sets the deferred ones. Two reads of each file in all.
    for position, path in enumerate(parts, 1):
        grouped = await _grouped(store, path, plans, wanted)
        for table_name, rows in grouped.items():
            for start in range(0, len(rows), CHUNK):
                await _put_back(
                    database, plans[table_name], rows[start : start + CHUNK], report, dry_run
                )
        if on_progress is not None:
            on_progress(report, position, len(parts))
    if not dry_run:  # the references to rows restored after their own
        deferred = {name: plan for name, plan in plans.items() if plan.deferred}
        for path in parts:
            for table_name, rows in (await _grouped(store, path, deferred, wanted)).items():
                for start in range(0, len(rows), CHUNK):
                    await _set_references(database, plans[table_name], rows[start : start + CHUNK])
    report.duration_seconds = time.monotonic() - started
    return report


async def _lines(store: Store, path: str) -> list[bytes]:
    try:
        return gzip.decompress(await store.read(path)).splitlines()
    except Exception as exc:
        raise RestoreRefused(
            f"the batch file {path} cannot be read ({type(exc).__name__}: {exc})",
            "restore the other targets with --target, or copy the file again from its "
            "source; nothing of this table was restored past the previous files",
        ) from exc


class _Wanted:
    """With ``--run``: the rows that belong to those flow runs."""

    def __init__(self, runs: set[str]) -> None:
        self.runs = runs
        self.flows: set[str] = set()
        self.task_runs: set[str] = set()

    @classmethod
    async def of(cls, store: Store, parts: list[str], runs: list[UUID]) -> _Wanted:
        wanted = cls({str(run) for run in runs})
        for path in parts:
            for line in await _lines(store, path):
                table, row = decode(line)
                if table == "flow_run" and row["id"] in wanted.runs:
                    wanted.flows.add(row["flow_id"])
                elif table == "task_run" and row.get("flow_run_id") in wanted.runs:
                    wanted.task_runs.add(row["id"])
        return wanted

    def __call__(self, table: str, row: dict[str, Any]) -> bool:
        if table == "flow":
            return row["id"] in self.flows
        if table == "flow_run":
            return row["id"] in self.runs
        if table == "task_run_state":
            return row["task_run_id"] in self.task_runs
        return row.get("flow_run_id") in self.runs


async def _grouped(
    store: Store, path: str, plans: dict[str, _Plan], wanted: _Wanted | None
) -> dict[str, list[dict[str, Any]]]:
    """The rows of one batch file for the tables of ``plans``, decoded, in ``plans``'
    order (parents first). A line's table is read from its start, before decoding."""
    prefixes = {name: f'{{"table":"{name}",'.encode() for name in plans}
    grouped: dict[str, list[dict[str, Any]]] = {name: [] for name in plans}
    for line in await _lines(store, path):
        for name, prefix in prefixes.items():
            if line.startswith(prefix):
                table, row = decode(line)
                if wanted is None or wanted(table, row):
                    grouped[name].append(restored(row, plans[name].decoders))
                break
    return {name: rows for name, rows in grouped.items() if rows}


async def _existing(session: AsyncSession, column: Any, values: set[str]) -> set[str]:
    import sqlalchemy as sa

    found: set[str] = set()
    listed = sorted(values)
    for start in range(0, len(listed), CHUNK):
        part = listed[start : start + CHUNK]
        result = await session.execute(sa.select(column).where(column.in_(part)))
        found.update(str(value) for value in result.scalars())
    return found


def _add(counts: dict[str, int], table: str, count: int) -> None:
    if count:
        counts[table] = counts.get(table, 0) + count


async def _put_back(
    database: Database,
    plan: _Plan,
    rows: list[dict[str, Any]],
    report: RestoreReport,
    dry_run: bool,
) -> None:
    """One chunk in one transaction: references checked, then inserted where absent."""
    table = plan.table
    name = table.name
    async with database.transaction() as session:
        for column_name, target in plan.checked.items():
            values = {str(row[column_name]) for row in rows if row.get(column_name) is not None}
            if not values:
                continue
            existing = await _existing(session, target, values)
            nullable = table.c[column_name].nullable
            kept: list[dict[str, Any]] = []
            for row in rows:
                value = row.get(column_name)
                if value is None or str(value) in existing:
                    kept.append(row)
                elif nullable:
                    row[column_name] = None
                    _add(report.cleared, name, 1)
                    kept.append(row)
                else:
                    _add(report.skipped, name, 1)
            rows = kept
        if not rows:
            return
        for row in rows:
            for column_name in plan.deferred:
                row[column_name] = None  # set in the last pass, once its row is back
        if dry_run:
            there = await _existing(session, table.c.id, {str(row["id"]) for row in rows})
            _add(report.present, name, len(there))
            _add(report.restored, name, len(rows) - len(there))
            return
        inserted = await _insert(session, database.dialect, table, rows)
        _add(report.restored, name, inserted)
        _add(report.present, name, len(rows) - inserted)


async def _insert(
    session: AsyncSession, dialect: str, table: Any, rows: list[dict[str, Any]]
) -> int:
    """Insert the rows that conflict with nothing here; how many went in."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).on_conflict_do_nothing().returning(table.c.id)
    result = await session.execute(statement, rows)
    return len(result.all())


async def _set_references(database: Database, plan: _Plan, rows: list[dict[str, Any]]) -> None:
    """References inserted empty: set where the row is still as this restore left it
    (empty there, same ``updated``) and the referenced row exists."""
    import sqlalchemy as sa

    table = plan.table
    async with database.transaction() as session:
        for column_name, target in plan.deferred.items():
            values = [
                {"b_id": row["id"], "b_value": row[column_name], "b_updated": row["updated"]}
                for row in rows
                if row.get(column_name) is not None
            ]
            if not values:
                continue
            statement = (
                sa.update(table)
                .where(
                    table.c.id == sa.bindparam("b_id"),
                    table.c[column_name].is_(None),
                    table.c.updated == sa.bindparam("b_updated"),
                    sa.exists().where(target == sa.bindparam("b_value")),
                )
                .values(
                    {column_name: sa.bindparam("b_value"), "updated": sa.bindparam("b_updated")}
                )
            )
            await session.execute(statement, values)
