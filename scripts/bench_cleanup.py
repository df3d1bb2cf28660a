"""Benchmark the cleanup's deletion against the alternatives, on identical seeded data.

    python scripts/bench_cleanup.py [--sizes 10000,50000] [--backends sqlite,postgres]
        [--slow-runs 300] [--api-runs 5000] [--batch-size 500] [--quick]

Per backend and size N, N finished runs that look real (3 task runs and 5 logs
each, ended about 60 days ago) are seeded once into a template; each method then
gets its own copy and runs in a fresh subprocess (clean peak-memory numbers, and
none of Prefect's process-global caches shared between databases):

(a) the published example: read the runs through the API, then one
    ``delete_flow_run`` at a time with a 0.1 s sleep (the first --slow-runs runs);
(b) the same without the sleep;
(c) this cleanup: the real ``database_cleanup`` flow, approval "none", on the
    in-process database path (all N runs) and on the API path (--api-runs runs);
(c) again with ``archive: none``, so the archive's cost is the ratio of the two;
(r) ``scripts/restore.py``'s restore of the archive (c) wrote (runs/s put back);
(d) Prefect's own vacuum, ``vacuum_old_flow_runs``, in-process (all N runs);
(s) one set-based SQL transaction deleting the same rows (the runs, and their
    logs and artifacts; the rest cascades): the database's own speed, the
    limit no batched deletion can pass.

Progress goes to stderr; a markdown table, notes and target checks to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_cleanup_methods import RETENTION_DAYS, child
from benchkit import (
    Db,
    backends,
    commit,
    create,
    drop,
    drop_all,
    load,
    pg,
    reachable,
    result_line,
    run_measured,
    say,
)

from flows.devstack.server import LocalServer

LABELS = {
    "a": "(a) example loop, 0.1 s sleep",
    "b": "(b) per-run delete_flow_run",
    "db": "(c) cleanup, in-process database path (archive on)",
    "bare": "(c) the same with archive: none",
    "restore": "(r) restore.py of (c)'s archive",
    "api": "(c) cleanup, API path (bulk_delete)",
    "vacuum": "(d) Prefect vacuum_old_flow_runs",
    "sql": "(s) one set-based SQL transaction",
}
# -- databases: templates, copies, counts ------------------------------------------------


def left(db: Db) -> str:
    """Seeded runs, task runs and logs still there (all of them ended before the cutoff)."""
    cut = (datetime.now(UTC) - timedelta(days=RETENTION_DAYS)).strftime("%Y-%m-%d %H:%M:%S")
    sql = "SELECT " + ", ".join(
        f"(SELECT count(*) FROM {table} WHERE {column} < '{cut}')"
        for table, column in (
            ("flow_run", "end_time"),
            ("task_run", "end_time"),
            ("log", "timestamp"),
        )
    )
    if db.backend == "sqlite":
        with contextlib.closing(sqlite3.connect(db.name)) as conn:
            row = tuple(conn.execute(sql).fetchone())
    else:
        row = tuple(asyncio.run(pg(sql, db.name))[0])
    return "/".join(map(str, row))


def seed(db: Db, n: int, home: Path) -> None:
    from flows.history.bulk import bulk_seed

    def progress(done: int) -> None:
        if done % max(n // 5, 1) < 2000:  # about every fifth (bulk_seed writes 2000 a chunk)
            say(f"  seeded {done}/{n}")

    say(f"{db.backend} N={n}: seeding the template")
    started = time.monotonic()
    with LocalServer(home, db.url) as server:
        seeded = asyncio.run(bulk_seed(server.api_url, db.url, n, progress=progress))
    say(
        f"  seeded {seeded.runs} runs, {seeded.task_runs} task runs, {seeded.logs} logs "
        f"in {time.monotonic() - started:.0f} s"
    )


# -- one method on a fresh copy ----------------------------------------------------------


@dataclass
class Result:
    backend: str
    n: int
    method: str
    deleted: int
    seconds: float
    peak_mb: float
    writer_ms: float
    left: str
    archive_bytes: int = 0

    @property
    def rate(self) -> float:
        return self.deleted / self.seconds if self.seconds > 0 else 0.0


def run_child(method: str, home: Path, args: argparse.Namespace, **env: str) -> dict[str, float]:
    arguments = ["--child", method, "--slow-runs", str(args.slow_runs)]
    arguments += ["--batch-size", str(args.batch_size), "--api-runs", str(args.api_runs)]
    return run_measured(arguments, method, PREFECT_HOME=str(home), **env)


def measure(template: Db, n: int, method: str, args: argparse.Namespace, work: Path) -> Result:
    home = work / f"{template.backend}-{n}-{method}"
    db = create(template.backend, work, f"{n}_{method}", template)
    say(f"{template.backend} N={n}: {LABELS[method]}")
    in_process = ("db", "bare", "restore", "vacuum", "sql")
    env = {"PREFECT_SERVER_DATABASE_CONNECTION_URL": db.url} if method in in_process else {}
    try:
        if method in ("vacuum", "sql"):  # in-process, as inside the server: 30 days
            env["PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD"] = str(RETENTION_DAYS * 86400)
            out = run_child(method, home, args, **env)
        else:
            with LocalServer(home / "server", db.url) as server:
                out = run_child(method, home, args, PREFECT_API_URL=server.api_url, **env)
        remaining = left(db)
        archive = home / "janitor" / "archive"
        stored = sum(f.stat().st_size for f in archive.rglob("*") if f.is_file())
    finally:
        drop(db)
    result = Result(
        template.backend,
        n,
        method,
        int(out["deleted"]),
        out["seconds"],
        out["peak_mb"],
        out["writer_ms"],
        remaining,
        stored if archive.exists() else 0,
    )
    say(
        f"  {result.deleted} runs in {result.seconds:.1f} s = {result.rate:.0f} runs/s "
        f"(process {out['total']:.1f} s, peak RSS {result.peak_mb:.0f} MB); left {remaining}"
    )
    return result


def bench(backend: str, n: int, args: argparse.Namespace, work: Path, into: list[Result]) -> None:
    template = create(backend, work, f"{n}_template")
    try:
        seed(template, n, work / f"{backend}-{n}-seed")
        for method in args.methods:
            into.append(measure(template, n, method, args, work))
    finally:
        drop(template)


# -- the report --------------------------------------------------------------------------


def table(results: list[Result], baseline: float) -> str:
    head = ["backend", "N", "method", "runs deleted", "seconds", "runs/s", "vs (a)", "vs (b)"]
    head += ["vs (d)", "vs (s)", "peak RSS MB (+ over baseline)", "longest write beside, ms"]
    head += ["archive KB per 1k runs", "left runs/tasks/logs"]
    rates = {(r.backend, r.n, r.method): r.rate for r in results}
    rows = [head, ["---"] * len(head)]
    for r in results:
        ratios = []
        for ref in ("a", "b", "vacuum", "sql"):
            other = rates.get((r.backend, r.n, ref))
            ratios.append("-" if ref == r.method or not other else f"{r.rate / other:.1f}x")
        cells = [r.backend, str(r.n), LABELS[r.method], str(r.deleted), f"{r.seconds:.2f}"]
        memory = f"{r.peak_mb:.0f} ({r.peak_mb - baseline:+.0f})"
        waited = f"{r.writer_ms:.0f}" if r.writer_ms >= 0 else "-"
        stored = f"{r.archive_bytes / 1024 / r.deleted * 1000:.0f}" if r.archive_bytes else "-"
        rows.append([*cells, f"{r.rate:.0f}", *ratios, memory, waited, stored, r.left])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def checks(results: list[Result]) -> list[str]:
    """PASS/FAIL for the in-process path (what a cleanup that reaches the database uses);
    the API path's numbers against the same targets are shown as "info"."""
    by = {(r.backend, r.n, r.method): r for r in results}
    lines = []
    for (backend, n, method), r in by.items():
        targets = [("a", 30.0), ("b", 3.0)] if backend == "sqlite" else []
        targets += [("vacuum", 2.0), ("sql", 0.7)]
        for ref, want in targets if method in ("db", "api") else []:
            other = by.get((backend, n, ref))
            if other is None:  # not measured in this run
                continue
            ratio = r.rate / other.rate if other.rate else 0.0
            verdict = ("PASS" if ratio >= want else "FAIL") if method == "db" else "info"
            lines.append(
                f"{verdict} {backend} N={n}: {LABELS[method]} is {ratio:.2f}x {LABELS[ref]}"
                f" (target >= {want:g}x)"
            )
    for (backend, n, method), r in by.items():
        bare = by.get((backend, n, "bare"))
        if method == "db" and bare is not None and bare.rate:
            cost = 1 - r.rate / bare.rate
            lines.append(
                f"{'PASS' if cost <= 0.3 else 'FAIL'} {backend} N={n}: archiving costs "
                f"{cost:.0%} of the deletion's throughput (target <= 30%)"
            )
    for backend in dict.fromkeys(r.backend for r in results):
        for method in ("db", "api"):
            peaks = sorted(
                (r.n, r.peak_mb) for r in results if (r.backend, r.method) == (backend, method)
            )
            if len(peaks) > 1:
                (small, low), (large, high) = peaks[0], peaks[-1]
                lines.append(
                    f"{'PASS' if high - low <= 20 else 'FAIL'} {backend}: {LABELS[method]} peak "
                    f"RSS {low:.0f} MB at N={small}, {high:.0f} MB at N={large} "
                    f"(target: flat in N, within 20 MB)"
                )
            lines += [
                f"{'PASS' if mb < 200 else 'FAIL'} {backend} N={n}: {LABELS[method]} peak RSS "
                f"{mb:.0f} MB (target < 200 MB at 100k runs)"
                for n, mb in peaks
                if n >= 100_000
            ]
    return lines


NOTES = """\
- Seeded per run: 3-4 flow run states, 3 task runs with 3 states each, 5 logs, no artifacts.
- (a) and (b) read the first {slow} runs through the API, then delete them one by one;
  the (c) database path and (d) delete all N, the (c) API path the first {api} (0: all).
  runs/s of (c) is the flow's own summary: deleted / deletion time (the flow's start,
  preview and approval are not counted).
- (c) deletes each batch's runs with everything that goes with them in one transaction
  (PostgreSQL: the cascade, counted from the transaction's own statistics; SQLite: the
  children first, a set at a time): on the database path the first batch is {batch}
  runs and the next ones are sized to take about {seconds:g} s (batch_seconds); 50 a batch
  through bulk_delete, whose logs the server deletes afterwards, one background task
  per run. (d) deletes runs in
  batches of 200, then their logs and artifacts in separate batches: comparable work.
  (d) runs with no server; (a), (b) and (c) talk to a `prefect server start` on the copy.
- Archive: (c) writes every deleted row, every column, as gzip-compressed JSON lines to
  a folder under the child's PREFECT_HOME, one fsync-ed file per batch, before the
  batch commits; "archive KB per 1k runs" is that folder's size. (r) puts the archive
  back with INSERT ... ON CONFLICT DO NOTHING, parents first, and then sets each run's
  state (a reference to a row restored after it).
- Longest write beside: while (c)'s database path, (d) and (s) delete, a thread makes a
  small write of its own every 50 ms on the same database (scripts/benchwriter.py); the
  longest one took this long, lock wait included: what the server's writes pay.
- Peak RSS: the measuring subprocess's max RSS; the baseline, {baseline:.0f} MB, is a process
  that only imports prefect and flows.cleanup. "left": seeded rows still there afterwards
  (on the API paths, logs of deleted runs whose background deletion had not run when the
  server was stopped count too).
- (b) on SQLite: a delete right after another meets the server's background log deletion
  holding the write lock; the server answers 503 and Prefect's client retries about 2 s
  later. (a)'s 0.1 s sleep avoids most of these collisions.
- flows/ at: {commit}.
- Load average (1, 5, 15 min): {start} at the start, {end} at the end; {cpus} cores."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000,50000", help="runs to seed, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--slow-runs", type=int, default=300, help="runs (a) and (b) delete")
    parser.add_argument("--api-runs", type=int, default=5000, help="the API path's (0: all N)")
    parser.add_argument("--batch-size", type=int, default=500, help="the cleanup's batch_size")
    parser.add_argument(
        "--quick", action="store_true", help="sizes 2000,10000, slow/api-runs 100/1000"
    )
    parser.add_argument("--methods", default=",".join(LABELS), help=f"of {','.join(LABELS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.slow_runs, args.api_runs = "2000,10000", 100, 1000
    args.sizes = [int(size) for size in str(args.sizes).split(",")]
    args.backends = backends(parser, args.backends)
    args.methods = [method for method in str(args.methods).split(",") if method in LABELS]
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        result_line(asyncio.run(child(args.child, args)))
        return
    start, code, baseline = load(), commit(), 0.0
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="janitor-bench-") as tmp:
        try:
            baseline = run_child("baseline", Path(tmp) / "baseline", args)["peak_mb"]
            for backend in args.backends:
                if backend == "postgres" and not reachable():
                    say("PostgreSQL is not reachable on 127.0.0.1:5432: skipped")
                    continue
                for n in args.sizes:
                    bench(backend, n, args, Path(tmp), results)
        except KeyboardInterrupt:
            say("interrupted: the results so far follow")
        finally:
            drop_all()
    print(table(results, baseline), end="\n\n")
    from flows.cleanup.config import RetentionConfig

    seconds = RetentionConfig.model_fields["batch_seconds"].default
    notes = {"slow": args.slow_runs, "api": args.api_runs, "batch": args.batch_size}
    notes.update(seconds=seconds)
    if commit() != code:  # flows/ changed while this ran: the results may mix both
        code = f"{code} at the start, {commit()} at the end"
    notes.update(baseline=baseline, commit=code, start=start, end=load())
    print(NOTES.format(**notes, cpus=os.cpu_count()))
    print("", *checks(results), sep="\n")


if __name__ == "__main__":
    main()
