"""What a cleanup target is: rows of some tables that a policy lets go.

Flow runs are the first target and have their own path (a manifest of ids,
the API as a fallback). The others (task runs made outside any flow run,
events, orphans) live only in the database, so they are counted and deleted
in-process, each batch selected again by its conditions (cutoffs fixed when
the preview was made) in a transaction of its own.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from flows.database import Database

ROWS_SCALE = 4
"""An event with its resources (about 6 rows), a task run with its states (about 4),
an orphan (1): each a quarter of a flow run's rows or less."""

Rows = Counter[str]
"""Rows per table: ``{"events": 1200, "event_resources": 5400}``."""


class Target(Protocol):
    """One kind of row a cleanup can delete besides flow runs."""

    @property
    def key(self) -> str:
        """Short name in payloads and the config: task_runs, events, orphans."""
        ...

    @property
    def title(self) -> str:
        """What a person reads: "task runs without a flow run"."""
        ...

    @property
    def tables(self) -> tuple[str, ...]:
        """The tables whose rows the cap (``max_rows``) counts: the target's own rows,
        not the ones that go with them."""
        ...

    @property
    def batch_scale(self) -> int:
        """Items per batch for each flow run of ``batch_size``: a batch of any target
        holds about the rows of ``batch_size`` flow runs (each about 25 rows with its
        states, task runs and logs), so one short transaction costs about the same."""
        ...

    async def count(self, database: Database) -> Rows:
        """The rows that would go now, per table."""
        ...

    async def delete_batch(self, database: Database, size: int) -> Rows | None:
        """Delete at most ``size`` of its rows (and theirs) in one transaction, each
        checked again as it goes; ``None`` once nothing is left to look at (a batch
        whose rows all changed meanwhile is an empty ``Rows``, not the end)."""
        ...


def capped_rows(target: Target, rows: Rows | dict[str, int]) -> int:
    """The rows that count toward ``max_rows``."""
    return sum(rows.get(table, 0) for table in target.tables)
