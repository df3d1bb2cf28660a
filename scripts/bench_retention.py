"""Benchmark the cleanup's event retention against Prefect's vacuum and plain SQL.

    python scripts/bench_retention.py [--events 1000000] [--resources 5]
        [--backends sqlite,postgres] [--batch-size 500] [--batch-seconds 1] [--quick]

Per backend, N events (20 types, ``--resources`` event_resources rows each,
four in five older than the cutoff) are written once into a template; each
method then gets its own copy and runs in a fresh subprocess:

(e) this cleanup's events target, in-process: one rule naming every type
    (``*``) with the same 7-day retention as the server's; first its preview
    count, then its deletion, batch by batch;
(v) Prefect's own ``vacuum_old_events`` (the server's 7-day event retention);
(s) one set-based SQL transaction deleting the same rows: the database's own
    speed, and the limit no batched deletion can pass.

Beside each, a writer makes a small write every 50 ms, as the server would
(``benchwriter``): the longest any of them waited is the price the server's
own writes paid for that method's speed.

Progress goes to stderr; a markdown table and target checks to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_retention_methods import child
from benchkit import (
    Db,
    backends,
    create,
    drop,
    drop_all,
    facts,
    load,
    pg,
    reachable,
    result_line,
    run_measured,
    say,
)

from flows.devstack.server import LocalServer

TYPES = 20
LABELS = {
    "e": "(e) cleanup events target",
    "v": "(v) Prefect vacuum_old_events",
    "s": "(s) one set-based SQL transaction",
}


# -- databases ---------------------------------------------------------------------------


def rows(n: int, resources: int, first: int = 0, total: int = 0) -> tuple[list[tuple], list[tuple]]:
    """Events ``first`` to ``first + n`` of ``total``, spread over the last 35 days (four
    in five older than 7 days) in the order they happened, as a server writes them (a
    minute of jitter), each with its resources; plain tuples in the tables' column order."""
    rng = random.Random(first)
    total = max(total, first + n)
    now = datetime.now(UTC)
    span = 35 * 86400
    events, links = [], []
    for i in range(n):
        ago = span * (1 - (first + i) / total) + rng.uniform(-60, 60)
        at = now - timedelta(seconds=min(max(ago, 0), span))
        stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")
        event_id = str(uuid.UUID(int=rng.getrandbits(128)))
        resource = f"prefect.flow-run.{(first + i) % 5000}"
        events.append(
            (
                event_id,
                stamp,
                stamp,
                stamp,
                f"prefect.bench.type-{(first + i) % TYPES}",
                resource,
                "{}",
                "[]",
                "[]",
                "{}",
                stamp,
                stamp,
                None,
            )
        )
        for r in range(resources):
            links.append(
                (
                    str(uuid.UUID(int=rng.getrandbits(128))),
                    stamp,
                    stamp,
                    stamp,
                    resource if r == 0 else f"{resource}.related.{r}",
                    "" if r == 0 else "related",
                    "{}",
                    event_id,
                )
            )
    return events, links


EVENT_COLUMNS = (
    "id, created, updated, occurred, event, resource_id, resource, "
    "related_resource_ids, related, payload, received, recorded, follows"
)
RESOURCE_COLUMNS = "id, created, updated, occurred, resource_id, resource_role, resource, event_id"


def seed(db: Db, n: int, resources: int, home: Path) -> None:
    say(f"{db.backend}: migrating an empty database, then writing {n} events")
    with LocalServer(home, db.url):
        pass  # the server's start runs Prefect's migrations
    started = time.monotonic()
    chunk = 50_000
    for start in range(0, n, chunk):
        events, links = rows(min(chunk, n - start), resources, first=start, total=n)
        if db.backend == "sqlite":
            with contextlib.closing(sqlite3.connect(db.name)) as conn:
                conn.executemany(
                    f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({', '.join('?' * 13)})", events
                )
                conn.executemany(
                    f"INSERT INTO event_resources ({RESOURCE_COLUMNS}) "
                    f"VALUES ({', '.join('?' * 8)})",
                    links,
                )
                conn.commit()
        else:
            asyncio.run(_copy(db.name, events, links))
        say(f"  {start + len(events)}/{n} events")
    if db.backend == "postgres":
        asyncio.run(pg("ANALYZE", db.name))
    say(f"  written in {time.monotonic() - started:.0f} s")


async def _copy(name: str, events: list[tuple], links: list[tuple]) -> None:
    import asyncpg  # type: ignore[import-untyped]

    def typed(row: tuple, times: tuple[int, ...], ids: tuple[int, ...]) -> tuple:
        out = list(row)
        for i in times:
            out[i] = datetime.strptime(out[i], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        for i in ids:
            out[i] = uuid.UUID(out[i])
        return tuple(out)

    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}")
    try:
        await conn.copy_records_to_table(
            "events",
            records=[typed(r, (1, 2, 3, 10, 11), (0,)) for r in events],
            columns=[c.strip() for c in EVENT_COLUMNS.split(",")],
        )
        await conn.copy_records_to_table(
            "event_resources",
            records=[typed(r, (1, 2, 3), (0, 7)) for r in links],
            columns=[c.strip() for c in RESOURCE_COLUMNS.split(",")],
        )
    finally:
        await conn.close()


def left(db: Db) -> str:
    sql = "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM event_resources)"
    if db.backend == "sqlite":
        with contextlib.closing(sqlite3.connect(db.name)) as conn:
            row = tuple(conn.execute(sql).fetchone())
    else:
        row = tuple(asyncio.run(pg(sql, db.name))[0])
    return "/".join(map(str, row))


@dataclass
class Result:
    backend: str
    n: int
    method: str
    deleted: int
    seconds: float
    preview: float
    peak_mb: float
    writer_ms: float
    left: str

    @property
    def rate(self) -> float:
        return self.deleted / self.seconds if self.seconds > 0 else 0.0


def measure(template: Db, n: int, method: str, args: argparse.Namespace, work: Path) -> Result:
    db = create(template.backend, work, f"events_{method}", template)
    say(f"{template.backend} N={n}: {LABELS[method]}")
    try:
        sizing = ["--batch-size", str(args.batch_size), "--batch-seconds", str(args.batch_seconds)]
        out = run_measured(
            ["--child", method, *sizing],
            method,
            PREFECT_HOME=str(work / f"{template.backend}-{method}"),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=db.url,
        )
        remaining = left(db)
    finally:
        drop(db)
    result = Result(
        template.backend,
        n,
        method,
        int(out["deleted"]),
        out["seconds"],
        out["preview"],
        out["peak_mb"],
        out["writer_ms"],
        remaining,
    )
    say(
        f"  {result.deleted} events in {result.seconds:.1f} s = {result.rate:.0f}/s; "
        f"peak RSS {result.peak_mb:.0f} MB; a write beside it waited up to "
        f"{result.writer_ms:.0f} ms; left {remaining}"
    )
    return result


def table(results: list[Result]) -> str:
    head = [
        "backend",
        "events",
        "method",
        "events deleted",
        "seconds",
        "events/s",
        "vs (v)",
        "vs (s)",
        "preview s",
        "peak RSS MB",
        "longest write beside, ms",
        "left events/resources",
    ]
    rates = {(r.backend, r.method): r.rate for r in results}
    lines = [head, ["---"] * len(head)]
    for r in results:
        ratios = [
            "-"
            if ref == r.method or not rates.get((r.backend, ref))
            else f"{r.rate / rates[(r.backend, ref)]:.2f}x"
            for ref in ("v", "s")
        ]
        lines.append(
            [
                r.backend,
                str(r.n),
                LABELS[r.method],
                str(r.deleted),
                f"{r.seconds:.1f}",
                f"{r.rate:.0f}",
                *ratios,
                f"{r.preview:.2f}" if r.method == "e" else "-",
                f"{r.peak_mb:.0f}",
                f"{r.writer_ms:.0f}" if r.writer_ms >= 0 else "-",
                r.left,
            ]
        )
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def checks(results: list[Result]) -> list[str]:
    by = {(r.backend, r.method): r for r in results}
    found = []
    for backend in dict.fromkeys(r.backend for r in results):
        ours, vacuum = by.get((backend, "e")), by.get((backend, "v"))
        if ours and vacuum and vacuum.rate:
            ratio = ours.rate / vacuum.rate
            found.append(
                f"{'PASS' if ratio >= 2 else 'FAIL'} {backend}: (e) is {ratio:.2f}x "
                "(v) (target >= 2x)"
            )
        if ours:
            found.append(
                f"{'PASS' if ours.preview < 5 else 'FAIL'} {backend}: the preview "
                f"count took {ours.preview:.2f} s (target < 5 s)"
            )
    return found


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--resources", type=int, default=5, help="event_resources per event")
    parser.add_argument("--backends", default="sqlite,postgres")
    from flows.cleanup.config import RetentionConfig

    defaults = RetentionConfig.model_fields  # the cleanup's own batch sizing
    parser.add_argument("--batch-size", type=int, default=defaults["batch_size"].default)
    parser.add_argument("--batch-seconds", type=float, default=defaults["batch_seconds"].default)
    parser.add_argument("--methods", default=",".join(LABELS))
    parser.add_argument("--quick", action="store_true", help="100,000 events")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.events = 100_000
    args.backends = backends(parser, args.backends)
    args.methods = [m for m in str(args.methods).split(",") if m in LABELS]
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        result_line(asyncio.run(child(args.child, args.batch_size, args.batch_seconds)))
        return
    start = load()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="janitor-bench-") as tmp:
        work = Path(tmp)
        try:
            for backend in args.backends:
                if backend == "postgres" and not reachable():
                    say("PostgreSQL is not reachable on 127.0.0.1:5432: skipped")
                    continue
                template = create(backend, work, "events_template")
                try:
                    seed(template, args.events, args.resources, work / f"{backend}-seed")
                    for method in args.methods:
                        results.append(measure(template, args.events, method, args, work))
                finally:
                    drop(template)
        except KeyboardInterrupt:
            say("interrupted: the results so far follow")
        finally:
            drop_all()
    print(table(results), end="\n\n")
    print(facts(start))
    print("", *checks(results), sep="\n")


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    main()
