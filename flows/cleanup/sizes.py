"""How big each table is, from the database's own statistics.

SQLite: ``dbstat`` (pages of each table and of its indexes) and ``count(*)``.
PostgreSQL: ``pg_total_relation_size`` (table, indexes and TOAST) and the
planner's row estimate ``reltuples`` (a count of a table of 300 M rows would
take minutes). The bytes a deletion frees are estimated as its rows times the
table's average row, indexes included: what a person needs to decide, not an
accounting.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from flows.database import Database

TABLES = (
    "flow_run",
    "flow_run_state",
    "task_run",
    "task_run_state",
    "log",
    "artifact",
    "artifact_collection",
    "flow_run_input",
    "events",
    "event_resources",
)


class TableSize(BaseModel):
    """One table: all of it, and what a cleanup would take from it."""

    table: str = Field(description="The table's name in Prefect's schema.")
    rows: int = Field(description="Rows in the table now (PostgreSQL: the planner's estimate).")
    bytes: int = Field(description="Bytes the table holds, its indexes included.")
    going_rows: int = Field(0, description="Rows this cleanup would delete.")
    going_bytes: int = Field(0, description="Estimated bytes those rows hold.")

    def with_going(self, rows: int) -> TableSize:
        average = self.bytes / self.rows if self.rows else 0.0
        going = min(rows, self.rows) if self.rows else rows
        return self.model_copy(update={"going_rows": rows, "going_bytes": round(average * going)})


async def table_sizes(database: Database) -> dict[str, TableSize]:
    """Rows and bytes of each of Prefect's tables that a cleanup deletes from."""
    import sqlalchemy as sa

    sizes: dict[str, TableSize] = {}
    async with database.session() as session:
        if database.dialect == "postgresql":
            found = await session.execute(
                sa.text(
                    "SELECT c.relname, greatest(c.reltuples, 0)::bigint, "
                    "pg_total_relation_size(c.oid) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'r' AND n.nspname = current_schema() "
                    "AND c.relname = ANY(:tables)"
                ),
                {"tables": list(TABLES)},
            )
            for table, rows, size in found.all():
                sizes[table] = TableSize(table=table, rows=int(rows), bytes=int(size))
            # reltuples is -1/0 until the table was first analysed; count small ones.
            for table, size in list(sizes.items()):
                if size.rows == 0 and size.bytes > 0:
                    counted = await _count(session, table)
                    sizes[table] = size.model_copy(update={"rows": counted})
            return sizes
        pages: dict[str, int] = {}
        found = await session.execute(
            sa.text(
                "SELECT m.tbl_name, sum(s.pgsize) FROM dbstat s "
                "JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name"
            )
        )
        for table, size in found.all():
            pages[table] = int(size or 0)
        for table in TABLES:
            if table in pages:
                sizes[table] = TableSize(
                    table=table, rows=await _count(session, table), bytes=pages[table]
                )
    return sizes


async def _count(session: Any, table: str) -> int:
    import sqlalchemy as sa

    if table not in TABLES:  # names are never taken from input; this keeps it so
        raise ValueError(f"unknown table {table!r}")
    return int(await session.scalar(sa.text(f'SELECT count(*) FROM "{table}"')) or 0)
