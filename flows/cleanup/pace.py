"""How large the next batch is: sized by the time a transaction takes, not by a count.

A batch's cost is mostly fixed per transaction, not per row: each commit writes
every index page its deletes touched, and the next batch, whose random ids land
on the same pages, writes most of them again. One transaction for everything
writes each page once, which is why it is about twice as fast as batches of a
few hundred runs (``scripts/bench_cleanup.py``). A fixed count cannot be
right for every database: at 20k runs, a batch of 500 took about 50 ms on
PostgreSQL and 0.2 to 0.4 s on SQLite here, more as the tables grow. So the
deletion starts at ``batch_size`` and then aims each transaction at
``batch_seconds``: a batch that came in well under it makes the next one
larger, one that took longer makes the next one smaller, never more than
doubling or halving at a time, and never beyond ``CEILING`` times the start.
The rows of a batch and its short transaction stay bounded; the lock a SQLite
writer holds stays about ``batch_seconds`` long, which is the price the
server's own writers pay while a cleanup runs. The default, 1 s, is chosen on
that price (``scripts/bench_retention.py`` measures it with a writer beside the
deletion, one small write every 50 ms). At 300k events on SQLite the longest
write waited 1.05 s with 1 s batches and 1.9 s with 2 s batches, never longer
(it gets in between two batches); 2 s deleted 1.38x faster, and at 1 M it left
the events short of twice the vacuum's speed all the same (1.73x). Prefect's
vacuum, in batches of 200 rows, kept that writer under 50 ms at 300k events
(181 ms at 1 M), at half the speed or less.
Where writes can wait longer (PostgreSQL, where a delete locks only its own
rows, or a maintenance window), a larger ``batch_seconds`` is faster.

A ``batch_seconds`` of 0 keeps every batch at ``batch_size``: the API path
(whose server caps a request anyway), and tests that count batches.
"""

from __future__ import annotations

from dataclasses import dataclass

CEILING = 20
"""A batch grows to at most this many times its first size."""


@dataclass
class Pace:
    """The size of the next batch, adjusted after each one by how long it took."""

    size: int
    seconds: float = 0.0
    ceiling: int = 0

    def __post_init__(self) -> None:
        self.size = max(1, self.size)
        self.ceiling = max(self.size, self.ceiling or self.size * CEILING)

    def took(self, elapsed: float, *, full: bool) -> None:
        """A batch of ``size`` (``full``), or a shorter last one, took ``elapsed`` seconds.

        A short batch says nothing about a full one unless it was already too slow.
        """
        if self.seconds <= 0 or elapsed <= 0 or (not full and elapsed <= self.seconds):
            return
        wanted = self.size * self.seconds / elapsed
        wanted = min(max(wanted, self.size / 2), self.size * 2)
        self.size = max(1, min(self.ceiling, int(wanted)))
