"""What every target's deletion shares: bounded id lists, one statement per table.

Each target selects a batch by an index (never a scan of a whole table per
batch), then removes that batch from each of its tables in one short
transaction, counting what each statement removed. The counts are the
database's own (``rowcount``), so the report says what happened.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from flows.archive import archived

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import AsyncSession

IDS_PER_STATEMENT = 500
"""Bound parameters per statement: far below SQLite's 32,766 and asyncpg's 32,767."""

T = TypeVar("T")


def chunked(items: Sequence[T], size: int = IDS_PER_STATEMENT) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def delete_where(session: AsyncSession, model: Any, condition: sa.ColumnElement[bool]) -> int:
    """Delete what ``condition`` names from one table; the database's own count. While
    the cleanup archives, the rows are archived first (``flows.archive.writer``)."""
    import sqlalchemy as sa

    kept = await archived(session, model, condition)
    if kept is None:
        return 0
    condition = kept
    result: Any = await session.execute(
        sa.delete(model).where(condition).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


async def delete_by(session: AsyncSession, column: Any, ids: Sequence[Any]) -> int:
    """Delete the rows whose ``column`` is one of ``ids``, a bounded list at a time."""
    model = column.class_
    total = 0
    for part in chunked(ids):
        total += await delete_where(session, model, column.in_(part))
    return total


async def count_by(session: AsyncSession, column: Any, ids: Sequence[Any]) -> int:
    import sqlalchemy as sa

    total = 0
    for part in chunked(ids):
        total += int(await session.scalar(sa.select(sa.func.count()).where(column.in_(part))) or 0)
    return total
