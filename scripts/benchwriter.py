"""A writer beside a measured deletion, as the server's own writes are beside a cleanup.

A deletion that is fast because it holds the database long is not what a
live server wants: on SQLite one writer at a time holds the database, and
every state change, log line and event the server writes meanwhile waits.
So while a method deletes, a thread of the measuring process makes one small
write every ``EVERY`` seconds (a row in a scratch table, in its own
transaction) on its own connection, waiting for the lock the way Prefect's
connections do (SQLite ``busy_timeout``), and records how long each write
took from asking to committed. The longest wait is what a server write paid
at worst while the method ran; PostgreSQL, whose deletes lock only their own
rows, is measured the same way for comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from types import TracebackType

EVERY = 0.05
"""Seconds between the writer's writes: about a busy server's pace of state changes."""
LOCK_WAIT_MS = 60_000
"""How long a write waits for SQLite's lock: Prefect's own server connections wait 60 s."""
TABLE = "janitor_bench_writer"


class Writer:
    """Writes beside the deletion on ``url`` (a database URL as Prefect's settings have it)
    from ``with`` until its end; ``waits`` are the seconds each write took."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.waits: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-writer", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None and kind is None:
            raise RuntimeError(f"the writer beside the deletion failed: {self._error}")

    @property
    def longest_ms(self) -> float:
        """The longest write, in ms; -1 when the method ended before the first one."""
        return max(self.waits) * 1000 if self.waits else -1.0

    def _run(self) -> None:
        try:
            if self.url.startswith("sqlite"):
                self._sqlite(self.url.split(":///", 1)[1])
            else:
                asyncio.run(self._postgres(self.url.replace("+asyncpg", "")))
        except BaseException as exc:  # reported by __exit__, in the measuring thread
            self._error = exc

    def _sqlite(self, path: str) -> None:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, at REAL)")
            while not self._stop.wait(EVERY):
                asked = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(f"INSERT INTO {TABLE} (at) VALUES (?)", (time.time(),))
                conn.execute("COMMIT")
                self.waits.append(time.perf_counter() - asked)

    async def _postgres(self, dsn: str) -> None:
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (id serial PRIMARY KEY, at float)"
            )
            while not self._stop.is_set():
                await asyncio.sleep(EVERY)
                asked = time.perf_counter()
                await conn.execute(f"INSERT INTO {TABLE} (at) VALUES ($1)", time.time())
                self.waits.append(time.perf_counter() - asked)
        finally:
            await conn.close()
