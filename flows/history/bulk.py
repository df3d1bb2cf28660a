"""Fast bulk seeding of old, finished flow runs for benchmarks (1k to 100k+ runs).

Making a run through the API costs tens of milliseconds, so at benchmark
volumes rows go straight into the database: the flow and deployment are made
through the API (so what the runs point at is the server's own), then runs,
their state history, task runs with their states, and logs (made by
`flows.history.rows`) are written chunk by chunk into Prefect's own tables: with
INSERT statements SQLAlchemy compiles from Prefect's ORM models on SQLite, with
COPY into the same tables and columns on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from prefect.client.orchestration import PrefectClient
from prefect.server.database import orm_models
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flows.history.rows import TABLES, Chunk, Row, RowMaker
from flows.history.seed import database_engine, table

#: Per table, the driver-level SQL and how to order a generated row for it.
Statements = dict[str, tuple[str, Callable[[Row], Row]]]


@dataclass(frozen=True)
class BulkSeeded:
    """What `bulk_seed` wrote, for a benchmark to check its cleanup against."""

    flow_id: UUID
    deployment_id: UUID
    runs: int = 0
    flow_run_states: int = 0
    task_runs: int = 0
    task_run_states: int = 0
    logs: int = 0


async def bulk_seed(
    api_url: str,
    database_url: str,
    n: int,
    *,
    flow_name: str = "janitor-bench",
    task_runs_per_run: int = 3,
    logs_per_run: int = 5,
    ended_ago: timedelta = timedelta(days=60),
    spread: timedelta = timedelta(days=3),
    chunk: int = 2000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> BulkSeeded:
    """Write `n` finished runs of flow `flow_name`, ended between `ended_ago` and
    `ended_ago + spread` ago, oldest first, as a server that ran them would hold them.

    Each run has its state history (Scheduled, Pending, Running, final for the
    90% made by the deployment; Pending, Running, final for the others), its
    task runs (Pending, Running, final each; the last ends as the run did) and
    its logs. Outcomes are about 80% Completed, 15% Failed, 3% Cancelled, 2%
    Crashed; `seed` makes the mix and times repeatable (ids are always fresh).
    Rows are made and committed `chunk` runs at a time, the next chunk being
    made while the last one is written, so memory stays flat in `n` and the
    server's own writes get the SQLite lock between chunks. `progress` is
    called with the number of runs written so far.
    """
    async with PrefectClient(api_url) as client:
        flow_id = await client.create_flow_from_name(flow_name)
        deployment_id = await client.create_deployment(flow_id=flow_id, name=f"{flow_name}-daily")
    sqlite = database_url.startswith("sqlite")
    engine = database_engine(database_url)
    if sqlite:
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    try:
        async with engine.connect() as conn:
            statements = _statements(conn.dialect)
            unchecked = sqlite or await _may_skip_foreign_keys(conn)
        oldest = datetime.now(UTC).replace(tzinfo=None) - ended_ago - spread
        maker = RowMaker(
            flow_id,
            deployment_id,
            flow_name,
            task_runs_per_run,
            logs_per_run,
            sqlite=sqlite,
            link_after_insert=not unchecked,
            seed=seed,
            window=(oldest, spread / max(n, 1)),
        )
        totals = dict.fromkeys(
            ("runs", "flow_run_states", "task_runs", "task_run_states", "logs"), 0
        )
        # SQLite takes one writer at a time; PostgreSQL can use two cores.
        writers = 1 if sqlite else 2
        made: asyncio.Queue[Chunk | None] = asyncio.Queue(maxsize=writers)

        async def make() -> None:
            for start in range(0, n, chunk):
                await made.put(await asyncio.to_thread(maker.chunk, start, min(chunk, n - start)))
            for _ in range(writers):
                await made.put(None)

        async def write() -> None:
            while (rows := await made.get()) is not None:
                async with engine.begin() as conn:
                    await _write(conn, rows, statements, postgres=not sqlite, unchecked=unchecked)
                for name in totals:
                    totals[name] += len(getattr(rows, "flow_runs" if name == "runs" else name))
                if progress is not None:
                    progress(totals["runs"])

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(make())
                for _ in range(writers):
                    group.create_task(write())
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from failed
        if not sqlite:
            await _analyze(engine)
    finally:
        await engine.dispose()
    return BulkSeeded(flow_id=flow_id, deployment_id=deployment_id, **totals)


async def _write(
    conn: AsyncConnection,
    rows: Chunk,
    statements: Statements,
    *,
    postgres: bool,
    unchecked: bool,
) -> None:
    """Parents before children. On PostgreSQL through COPY, which measured 1.5 to
    2.5 times faster there than the prepared INSERT run once a row."""
    if postgres:
        # Also opens the transaction before COPY goes around SQLAlchemy. A
        # commit lost to a crash only loses seeded rows.
        await conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        if unchecked:
            await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
    for name, model, columns in TABLES:
        batch: list[Row] = getattr(rows, name)
        if not batch:
            continue
        if postgres:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.copy_records_to_table(
                table(model).name, records=batch, columns=list(columns)
            )
        else:
            sql, order = statements[name]
            await conn.exec_driver_sql(sql, [order(row) for row in batch])
    if rows.links:
        sql, order = statements["links"]
        await conn.exec_driver_sql(sql, [order(row) for row in rows.links])


async def _may_skip_foreign_keys(conn: AsyncConnection) -> bool:
    """flow_run.state_id and flow_run_state.flow_run_id point at each other.
    SQLite connections check no foreign keys unless asked. On PostgreSQL a
    superuser may switch the checks off for the load, as pg_restore does;
    anyone else inserts runs unlinked and links them once their states exist."""
    setting = await conn.scalar(sa.text("SELECT current_setting('is_superuser')"))
    return bool(setting == "on")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """As the server sets its own connections: durable at checkpoints rather
    than at each commit, and a page cache that holds the indexes being grown."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA cache_size = 20000")
    cursor.close()


async def _analyze(engine: AsyncEngine) -> None:
    """Fresh planner statistics, as autovacuum gives a server that grew slowly:
    a benchmark must not measure plans made for empty tables."""
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for name in ("flow_run", "flow_run_state", "task_run", "task_run_state", "log"):
            await autocommit.exec_driver_sql(f"ANALYZE {name}")


def _statements(
    dialect: sa.Dialect,
) -> Statements:
    """The driver-level SQL of each insert, compiled by SQLAlchemy from Prefect's
    tables, and how to put a generated row in its parameter order."""
    compiled_for: Statements = {}
    for name, model, columns in TABLES:
        target = table(model)
        unknown = set(columns) - set(target.c.keys())
        if unknown:  # a new Prefect version dropped or renamed a column
            raise RuntimeError(f"{target.name} has no columns {sorted(unknown)}")
        unfilled = {c.key for c in target.columns if c.default is not None} - set(columns)
        if unfilled:  # a new Prefect version added a column with a Python default
            raise RuntimeError(f"bulk_seed fills no value for {target.name}.{sorted(unfilled)}")
        compiled = sa.insert(target).compile(dialect=dialect, column_keys=list(columns))
        compiled_for[name] = (str(compiled), _reorder(columns, compiled.positiontup))
    flow_run = table(orm_models.FlowRun)
    link = (
        sa.update(flow_run)
        .where(flow_run.c.id == sa.bindparam("run_id"))
        .values(state_id=sa.bindparam("final_state_id"), updated=sa.bindparam("run_updated"))
        .compile(dialect=dialect)
    )
    order = _reorder(("run_id", "final_state_id", "run_updated"), link.positiontup)
    compiled_for["links"] = (str(link), order)
    return compiled_for


def _reorder(columns: Sequence[str], positions: Sequence[str] | None) -> Callable[[Row], Row]:
    if positions is None or list(positions) == list(columns):
        return lambda row: row
    if set(positions) != set(columns):
        raise RuntimeError(f"compiled parameters {positions} differ from {columns}")
    pick = itemgetter(*(columns.index(p) for p in positions))
    return lambda row: tuple(pick(row))
