"""Metrics read from the server's database itself: its size and its tables' rows."""

from __future__ import annotations

import os
from contextlib import suppress
from datetime import timedelta
from functools import cache
from typing import Any, ClassVar

from pydantic import Field, field_validator

from triggers.base import SpecModel
from triggers.metrics.base import Metric, MetricUnavailable, Source
from triggers.problems import did_you_mean
from triggers.units import Unit


@cache
def prefect_tables() -> frozenset[str]:
    """The tables of the installed Prefect's schema, so a name always matches the server's."""
    from prefect.server.database.orm_models import Base

    return frozenset(Base.metadata.tables)


class DatabaseSize(Metric):
    name = "database.size_bytes"
    unit = Unit.BYTES
    description = (
        "The size of the server's database: the SQLite file plus its write-ahead log, "
        "or pg_database_size on PostgreSQL."
    )

    async def measure(self, source: Source, query: Any, window: timedelta) -> float:
        database = source.require_database()
        if database.dialect == "sqlite":
            return float(sqlite_size(database.connection_url))
        return float(await database.scalar("SELECT pg_database_size(current_database())"))


def sqlite_size(connection_url: str) -> int:
    from sqlalchemy.engine import make_url

    path = make_url(connection_url).database
    if not path or path == ":memory:":
        raise MetricUnavailable("the server's SQLite database is in memory; it has no size")
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise MetricUnavailable(f"cannot stat the SQLite file: {exc.strerror}") from exc
    # No write-ahead log right now: checkpointed, or not in WAL mode.
    with suppress(FileNotFoundError):
        size += os.stat(f"{path}-wal").st_size
    return size


class TableQuery(SpecModel):
    table: str = Field(
        description="A table of Prefect's schema: events, log, flow_run, task_run, "
        "flow_run_state, task_run_state, artifact, ..."
    )

    @field_validator("table")
    @classmethod
    def _known_table(cls, value: str) -> str:
        tables = prefect_tables()
        if value not in tables:
            hint = did_you_mean(value, set(tables)) or "tables: " + ", ".join(sorted(tables))
            raise ValueError(f"{value!r} is not a table of Prefect's schema; {hint}")
        return value


class TableRows(Metric):
    name = "database.table_rows"
    unit = Unit.COUNT
    description = (
        "Rows in one table of the server's database: an exact count on SQLite, "
        "the planner's estimate (pg_class.reltuples) on PostgreSQL, which costs "
        "nothing on a table of millions."
    )
    query_model: ClassVar[type[SpecModel]] = TableQuery

    async def measure(self, source: Source, query: TableQuery, window: timedelta) -> float:
        database = source.require_database()
        table = query.table  # validated against Prefect's own table names
        if database.dialect == "postgresql":
            estimate = await database.scalar(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:name)",
                name=table,
            )
            if estimate is not None and estimate >= 0:
                return float(estimate)
            # -1: never analyzed yet (a young database); small enough to count.
        return float(await database.scalar(f'SELECT count(*) FROM "{table}"'))
