"""Benchmark the metric probe against real servers holding a large run history.

    python scripts/bench_probe.py [--runs 100000] [--repeat 3] [--backends sqlite,postgres]
        [--quick]

Per backend, a fresh `prefect server start` on a new database gets --runs finished
flow runs (mixed final states, tags, 3 task runs and 5 logs each, end times spread
over the last 90 days; `flows.history.bulk`), then one published rule per catalog
metric. The real `metric_probe` flow then runs --repeat times, each in a fresh
subprocess, as a served deployment runs each flow run (cold imports, engine and
connections; none of Prefect's process-global caches shared between servers).

Progress goes to stderr; a markdown table, with the target check, to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

# Only what the probe imports itself: the measured subprocess runs this module, and a
# module imported here (prefect.server by flows.history.bulk, say) would not be timed there.
from benchkit import (
    POSTGRES,
    STARTED,
    backends,
    create,
    drop,
    reachable,
    result_line,
    run_measured,
    say,
)

from flows.devstack.server import LocalServer
from triggers.metrics import CATALOG
from triggers.metrics.rule import Rule
from triggers.spec.automation import OWNER_TAG
from triggers.units import human

TARGET_SECONDS = 2.0
MONTH = 30 * 86400
DAY = 86400.0
#: One rule per catalog metric: metric, query, range in seconds, operator, threshold.
RULES: tuple[tuple[str, dict[str, Any], float, str, float], ...] = (
    ("database.size_bytes", {}, 0.0, ">", 10 * 1024**3),
    ("database.table_rows", {"table": "log"}, 0.0, ">", 5_000_000),
    ("flow_runs.count", {"states": ["COMPLETED", "FAILED"], "older_than": MONTH}, 0.0, ">", 5e4),
    ("task_runs.count", {"states": ["COMPLETED", "FAILED"], "older_than": MONTH}, 0.0, ">", 1e5),
    ("flow_runs.lateness", {}, DAY, ">", 300.0),
    ("flow_runs.duration", {}, DAY, ">", 3600.0),
    ("flow_runs.success_rate", {}, DAY, "<", 90.0),
)
WHOLE = "(whole probe run)"
# -- in the subprocess: one real probe flow run --------------------------------------------


def child() -> None:
    from flows.probe.flow import metric_probe

    started = time.perf_counter()
    report = asyncio.run(metric_probe())
    result = {"report": report.model_dump(mode="json"), "flow": time.perf_counter() - started}
    result_line(result)


def run_probe(server: LocalServer, home: Path) -> dict[str, Any]:
    result = run_measured(
        ["--child"],
        "the probe",
        PREFECT_HOME=str(home),
        PREFECT_API_URL=server.api_url,
        PREFECT_SERVER_DATABASE_CONNECTION_URL=server.database_url,
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    if result["report"]["outcome"] != "probed":
        raise RuntimeError(f"the probe did not evaluate: {result['report']}")
    return result


# -- in the parent: databases, servers, seeding, rules ------------------------------------


def publish_rules(api_url: str) -> None:
    """As sync publishes them: one variable per rule, tagged for ownership."""
    with httpx.Client(base_url=api_url, timeout=30, trust_env=False) as client:
        for metric, query, range_seconds, operator, threshold in RULES:
            rule = Rule(
                id=f"bench-{metric.replace('.', '-')}",
                automation="bench-probe",
                metric=metric,
                query=query,
                operator=operator,
                threshold=threshold,
                unit=CATALOG[metric].unit,
                range_seconds=range_seconds,
            )
            body = {"name": rule.variable, "value": rule.published(), "tags": [OWNER_TAG]}
            client.post("/variables/", json=body).raise_for_status()


def bench(backend: str, args: argparse.Namespace, work: Path) -> list[list[str]]:
    """Seed, publish, probe --repeat times; the backend's table rows."""
    from flows.history.bulk import bulk_seed

    home = work / backend
    home.mkdir()
    db = create(backend, home, "probe")
    url = db.url
    try:
        with LocalServer(home / "server", url) as server:
            say(f"{backend}: seeding {args.runs} runs")
            started = time.monotonic()
            seeded = asyncio.run(
                bulk_seed(
                    server.api_url,
                    url,
                    args.runs,
                    ended_ago=timedelta(minutes=5),
                    spread=timedelta(days=90),
                    progress=lambda done: say(f"  seeded {done}") if done % 20_000 == 0 else None,
                )
            )
            say(
                f"  {seeded.runs} runs, {seeded.task_runs} task runs, {seeded.logs} logs "
                f"in {time.monotonic() - started:.0f} s"
            )
            publish_rules(server.api_url)
            results = []
            for attempt in range(args.repeat):
                results.append(run_probe(server, home / f"probe-{attempt}"))
                report = results[-1]["report"]
                say(f"  probe {attempt + 1}/{args.repeat}: {report['seconds']:.2f} s")
    finally:
        drop(db)
    return rows(backend, args.runs, results)


# -- the report -----------------------------------------------------------------------------


def rows(backend: str, runs: int, results: list[dict[str, Any]]) -> list[list[str]]:
    reports = [result["report"] for result in results]
    per_metric: dict[str, list[float]] = {}
    for report in reports:
        for measurement in report["measurements"]:
            per_metric.setdefault(measurement["metric"], []).append(measurement["seconds"])
    last = {m["metric"]: m for m in reports[-1]["measurements"]}
    table = []

    def add(label: str, value: str, seconds: list[float], target: str = "", met: str = "") -> None:
        table.append([backend, f"{runs}", label, value, *timing(seconds), target, met])

    for metric, seconds in per_metric.items():
        m = last[metric]
        value = human(m["value"], CATALOG[metric].unit) if m["status"] == "ok" else m["status"]
        add(metric, value + (f" ({m['reason'][:80]})" if m["reason"] else ""), seconds)
    whole = [report["seconds"] for report in reports]
    rest = [r["seconds"] - sum(m["seconds"] for m in r["measurements"]) for r in reports]
    add("(in the probe, outside the measurements)", "rules, states, database lookup, events", rest)
    met = "yes" if max(whole) < TARGET_SECONDS else "NO"
    value = f"{reports[-1]['rules']} rules, {len(last)} measurements"
    add(WHOLE, value, whole, f"< {TARGET_SECONDS:g} s (max)", met)
    flow = [result["flow"] for result in results]
    add("(the flow call: + Prefect's flow-run overhead)", "", flow, "info")
    return table


def timing(seconds: list[float]) -> list[str]:
    return [f"{statistics.median(seconds):.3f}", f"{max(seconds):.3f}"]


def markdown(table: list[list[str]]) -> str:
    head = ["backend", "runs", "metric", "value", "median s", "max s", "target", "met"]
    lines = [head, ["---"] * len(head), *table]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=100_000, help="flow runs to seed")
    parser.add_argument("--repeat", type=int, default=3, help="probe runs per backend")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="5000 runs, 1 probe run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.repeat = 5000, 1
    args.backends = backends(parser, args.backends)
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        child()
        return
    table: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="janitor-bench-probe-") as tmp:
        for backend in args.backends:
            if backend == "postgres" and not reachable():
                print(f"postgres: skipped, PostgreSQL is not reachable at {POSTGRES}")
                continue
            table += bench(backend, args, Path(tmp))
    print(markdown(table))
    print(f"\n{args.repeat} probe run(s) per backend, each in a fresh process (cold, as deployed);")
    print(f"{WHOLE} is ProbeReport.seconds; wall time {time.monotonic() - STARTED:.0f} s")


if __name__ == "__main__":
    main()
