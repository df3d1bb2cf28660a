"""What the benchmarks share: progress lines, scratch databases, measured subprocesses.

Each benchmark measures in a fresh subprocess of itself (clean peak memory,
cold imports, none of Prefect's process-global caches shared between
databases); the subprocess prints one ``RESULT <json>`` line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.devstack.server import sqlite_url

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line on stderr, stamped with the time since start; stdout is the report."""
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def result_line(result: Any) -> None:
    """In the subprocess: hand the result to the parent."""
    print("RESULT " + json.dumps(result), flush=True)


def run_measured(arguments: list[str], what: str, **env: str) -> dict[str, Any]:
    """Run the calling script again with ``arguments`` and Prefect settings ``env`` only."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    environment.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", **env)
    command = [sys.executable, sys.argv[0], *arguments]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not found:
        raise RuntimeError(f"{what} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(found[-1].removeprefix("RESULT "))
    return result


@dataclass(frozen=True)
class Db:
    backend: str
    name: str  # a file path on SQLite, a database name on PostgreSQL

    @property
    def url(self) -> str:
        if self.backend == "sqlite":
            return sqlite_url(Path(self.name))
        return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.name}"


CREATED: list[Db] = []
"""Scratch databases not yet dropped; ``drop_all`` clears them, also on Ctrl-C and errors."""


async def pg(sql: str, database: str = "postgres") -> list[Any]:
    # Imported here: a measured subprocess imports this module, and must load
    # no driver the code it measures would not load itself.
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(f"{POSTGRES}/{database}", timeout=5)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def reachable() -> bool:
    import asyncpg

    try:
        asyncio.run(pg("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def create(backend: str, work: Path, label: str, template: Db | None = None) -> Db:
    """A new empty database, or a copy of a template whose server is stopped."""
    if backend == "sqlite":
        db = Db(backend, str(work / f"{label}.db"))
        if template is not None:  # the backup API reads through the WAL, whatever its state
            with (
                contextlib.closing(sqlite3.connect(template.name)) as source,
                contextlib.closing(sqlite3.connect(db.name)) as target,
            ):
                source.backup(target)
    else:
        import asyncpg

        db = Db(backend, f"janitor_bench_{uuid.uuid4().hex[:8]}_{label}")
        sql = f'CREATE DATABASE "{db.name}"' + (f' TEMPLATE "{template.name}"' if template else "")
        for attempt in range(30):  # a stopped server's connections may take a moment to go
            try:
                asyncio.run(pg(sql))
                break
            except asyncpg.ObjectInUseError:
                if attempt == 29:
                    raise
                time.sleep(1)
    CREATED.append(db)
    return db


def drop(db: Db) -> None:
    if db.backend == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(db.name + suffix).unlink(missing_ok=True)
    else:
        asyncio.run(pg(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)'))
    CREATED.remove(db)


def drop_all() -> None:
    for db in list(CREATED):
        with contextlib.suppress(Exception):
            drop(db)


def load() -> str:
    """The machine's load average (1, 5, 15 min), printed with every table."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def commit(folder: str = "flows") -> str:
    """The last commit of the code measured, and whether it has been edited since."""
    git = ["git", "-C", str(Path(__file__).resolve().parent.parent)]
    last = [*git, "log", "-1", "--format=%h %s", "--", folder]
    head = subprocess.run(last, capture_output=True, text=True).stdout.strip()[:60]
    changed = subprocess.run([*git, "status", "--porcelain", folder], capture_output=True)
    return head + (", with uncommitted changes" if changed.stdout else "")


def stats(values: list[float]) -> list[float]:
    """p50, p95 and max; the one value three times when there is one, empty for none."""
    if len(values) < 2:
        return values * 3
    p95 = statistics.quantiles(values, n=20, method="inclusive")[18]
    return [statistics.median(values), p95, max(values)]


def facts(load_at_start: str) -> str:
    """What a table was measured on: command, commit, versions, machine, load, wall time."""
    import prefect

    return (
        f"command: python {' '.join(sys.argv)}; at commit {commit('.')}; "
        f"prefect {prefect.__version__},"
        f" Python {platform.python_version()}, {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} cores; load average (1, 5, 15 min) {load_at_start} at the start, "
        f"{load()} at the end; wall time {time.monotonic() - STARTED:.0f} s"
    )


def backends(parser: argparse.ArgumentParser, value: str) -> list[str]:
    """``--backends sqlite,postgres`` as a list; an unknown name is a usage error."""
    chosen = str(value).split(",")
    if unknown := set(chosen) - {"sqlite", "postgres"}:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    return chosen
