"""Benchmark the loop's latencies: a metric firing to its cleanup running, a step to Slack.

    python scripts/bench_loop.py [--firings 10] [--backends sqlite,postgres] [--quick]

Why: a breach should start its cleanup within seconds (target: p95 < 5 s from the probe's
``janitor.metric.firing`` event to the cleanup flow run Running), and a person should see
each step in Slack within a second (target: p95 < 1 s from a step event to its message).

Per backend (SQLite; PostgreSQL at 127.0.0.1:5432 when reachable): a fresh
``prefect server start`` on a scratch database; the two deployments served as the local
stack serves them (``python -m flows.serve``: the runner looks for work every second), with
the server's database reachable; the shipped notification automations posting to a Slack
stand-in on 127.0.0.1; and one metric automation of this benchmark: more than 4 finished
runs of its flow older than 30 days runs the cleanup deployment (approval none, scoped to
that flow). Each firing: 5 old runs are seeded, the served probe is started (as its
schedule does) and fires, the automation creates the cleanup run, the runner starts it,
it deletes the runs, and a second probe run resolves the metric. Times come from the
server's records (event ``received``, flow run ``created``, state timestamps; one clock)
and the stand-in's arrival clock. Progress goes to stderr, a markdown table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from benchkit import (
    POSTGRES,
    backends,
    create,
    drop,
    drop_all,
    facts,
    load,
    reachable,
    say,
    stats,
)

from flows.devstack.console import SlackConsole
from flows.devstack.served import Served
from flows.devstack.server import LocalServer, request
from flows.history.seed import RunSpec, make_history
from flows.serve import CLEANUP, PROBE
from triggers.sync import Mode, sync_automations

ROOT = Path(__file__).resolve().parent.parent
FLOW = "janitor-bench-loop"
RULE = "bench-old-runs"
START_TARGET, SLACK_TARGET = 5.0, 1.0
WAIT_SECONDS = 120.0
AUTOMATION = f"""\
name: bench-cleanup-when-old-runs-pile-up
trigger:
  type: metric
  id: {RULE}
  metric: flow_runs.count
  query: {{flows: [{FLOW}], states: [COMPLETED], older_than: 30d}}
  operator: ">"
  threshold: 4
actions:
  - type: run-deployment
    deployment: {CLEANUP}
    parameters: {{config: {{approval: none, flows: [{FLOW}]}}}}
"""


@dataclass
class Firing:
    created: float  # seconds from the server receiving the firing event to the run created
    pending: float  # ... to the runner picking it up
    running: float  # ... to the flow beginning in its process
    measured: float  # seconds from the probe's measurement (the event's occurred) to running


@dataclass
class Results:
    backend: str
    firings: list[Firing] = field(default_factory=list)
    slack: list[float] = field(default_factory=list)  # seconds, step event -> message
    missing: int = 0  # step events whose message never came


def automations(folder: Path) -> Path:
    """The shipped notifications and the Slack block, and this benchmark's automation."""
    shutil.copytree(ROOT / "automations", folder)
    for shipped in folder.glob("cleanup-when-*.yaml"):
        shipped.unlink()  # their thresholds are a real server's, not this one's
    (folder / "bench.yaml").write_text(AUTOMATION)
    return folder


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def wait(what: str, check: Any, timeout: float = WAIT_SECONDS) -> Any:
    """``check()``'s first true answer, polled; a clear error after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise RuntimeError(f"no {what} within {timeout:.0f} s")


class Loop:
    """One backend's server, served deployments and Slack stand-in."""

    def __init__(self, server: LocalServer, served: Served, slack: SlackConsole) -> None:
        self.server, self.served, self.slack = server, served, slack
        self.client = httpx.Client(base_url=server.api_url, timeout=30, trust_env=False)

    def post(self, path: str, body: Any) -> Any:
        response = request(self.client, "POST", path, body)
        response.raise_for_status()
        return response.json()

    def events(self, name: str, since: datetime) -> list[dict[str, Any]]:
        body = {
            "filter": {
                "occurred": {"since": since.isoformat()},
                "event": {"name": [name]},
                "order": "ASC",
            },
            "limit": 50,
        }
        found: list[dict[str, Any]] = self.post("/events/filter", body)["events"]
        return found

    def firing(self, since: datetime) -> Firing:
        """One firing, measured: seed, probe, cleanup, resolve."""
        asyncio.run(
            make_history(
                self.server.api_url,
                self.server.database_url,
                [RunSpec(FLOW, ago=timedelta(days=40))] * 5,
            )
        )
        self.served.run_now(PROBE)
        (fired, *_) = wait("firing", lambda: self.events("janitor.metric.firing", since))
        runs_body = {
            "flows": {"name": {"any_": ["database-cleanup"]}},
            "flow_runs": {"start_time": {"after_": since.isoformat()}},
        }
        (run, *_) = wait(
            "completed cleanup",
            lambda: [
                r
                for r in self.post("/flow_runs/filter", runs_body)
                if r["state_type"] == "COMPLETED"
            ],
        )
        states = request(self.client, "GET", f"/flow_run_states/?flow_run_id={run['id']}").json()
        first = {
            kind: min(when(s["timestamp"]) for s in states if s["type"] == kind)
            for kind in ("PENDING", "RUNNING")
        }
        at = when(fired["received"])
        self.served.run_now(PROBE)
        wait("resolved", lambda: self.events("janitor.metric.resolved", since))
        return Firing(
            created=when(run["created"]) - at,
            pending=first["PENDING"] - at,
            running=first["RUNNING"] - at,
            measured=first["RUNNING"] - when(fired["occurred"]),
        )

    def slack_latencies(self, since: datetime, into: Results) -> None:
        """Every step and metric event since ``since`` that posts to Slack, to its message."""
        names = [
            "janitor.metric.firing",
            "janitor.metric.resolved",
            "janitor.approval.granted",
            "janitor.deletion.started",
            "janitor.deletion.completed",
        ]
        events = [event for name in names for event in self.events(name, since)]
        arrivals: dict[str, float] = {}

        def all_arrived() -> bool:
            for message, at in zip(self.slack.received, self.slack.arrived_at, strict=False):
                for block in message.get("blocks") or []:
                    block_id = str(block.get("block_id") or "")
                    if block_id.startswith("janitor-event-"):
                        arrivals.setdefault(block_id.removeprefix("janitor-event-"), at)
            return all(event["id"] in arrivals for event in events)

        with contextlib.suppress(RuntimeError):  # what never came is counted as missing
            wait("Slack messages", all_arrived, timeout=30)
        for event in events:
            if event["id"] in arrivals:
                into.slack.append(arrivals[event["id"]] - when(event["received"]))
            else:
                into.missing += 1


def bench(backend: str, firings: int, work: Path, into: list[Results]) -> None:
    db = create(backend, work, "loop")
    slack = SlackConsole(sink=lambda _line: None).start()
    results = Results(backend)
    into.append(results)
    try:
        with LocalServer(work / backend, db.url) as server:
            environ = {
                **os.environ,
                "SLACK_WEBHOOK_URL": slack.url,
                "JANITOR_PROBE_INTERVAL": "86400",  # only this benchmark's probe runs count
            }
            served = Served(
                server.api_url,
                work / f"{backend}-serve.log",
                {
                    **environ,
                    "PREFECT_SERVER_DATABASE_CONNECTION_URL": server.database_url,
                    "PREFECT_HOME": str(work / f"{backend}-worker"),
                },
            )
            try:
                served.start().wait()
                folder = automations(work / f"{backend}-automations")
                outcome = asyncio.run(
                    sync_automations(
                        folder, api_url=server.api_url, mode=Mode.APPLY, environ=environ
                    )
                )
                if outcome.error is not None:
                    raise RuntimeError(f"sync failed: {outcome.error}")
                loop = Loop(server, served, slack)
                time.sleep(5)  # new automations reach the triggers service
                with loop.client:
                    loop_firings(loop, backend, firings, results)
            finally:
                served.stop()
    finally:
        slack.stop()
        drop(db)


def loop_firings(loop: Loop, backend: str, firings: int, results: Results) -> None:
    for number in range(firings):
        since = datetime.now(UTC)
        firing = loop.firing(since)
        loop.slack_latencies(since, results)
        results.firings.append(firing)
        say(
            f"{backend} firing {number + 1}/{firings}: created {firing.created:.2f} s, "
            f"picked up {firing.pending:.2f} s, running {firing.running:.2f} s "
            f"({firing.measured:.2f} s after the measurement)"
        )


def cells(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in stats(values)) or "-"


def markdown(results: list[Results]) -> str:
    rows = [
        "| backend | firings | firing -> run created | -> picked up | -> running "
        f"| running p95 < {START_TARGET:g} s | measured -> running | messages | step -> Slack "
        f"| p95 < {SLACK_TARGET:g} s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        running = [f.running for f in r.firings]
        start_met = "yes" if running and stats(running)[1] < START_TARGET else "NO"
        slack_met = (
            "yes" if r.slack and stats(r.slack)[1] < SLACK_TARGET and not r.missing else "NO"
        )
        rows.append(
            f"| {r.backend} | {len(r.firings)} | {cells([f.created for f in r.firings])} "
            f"| {cells([f.pending for f in r.firings])} | {cells(running)} | {start_met} "
            f"| {cells([f.measured for f in r.firings])} "
            f"| {len(r.slack)} ({r.missing} missing) | {cells(r.slack)} | {slack_met} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--firings", type=int, default=10, help="firings per backend")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--quick", action="store_true", help="3 firings")
    args = parser.parse_args()
    chosen = backends(parser, args.backends)
    firings = 3 if args.quick else args.firings
    load_at_start = load()
    results: list[Results] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="janitor-bench-loop-") as tmp:
        try:
            for backend in chosen:
                if backend == "postgres" and not reachable():
                    skipped.append(f"postgres: skipped, PostgreSQL is not reachable at {POSTGRES}")
                    say(skipped[-1])
                    continue
                bench(backend, firings, Path(tmp), results)
        except KeyboardInterrupt:
            say("interrupted: the results so far follow")
        finally:
            drop_all()
    print(markdown(results), *skipped, sep="\n")
    print(
        "\nEach cell: p50 / p95 / max seconds. From the server's receipt of the firing event "
        "(its `received`) to the cleanup flow run's `created`, its first Pending state (the "
        "runner took it) and its first Running state (the flow began in its own process). "
        "measured -> running starts at the event's `occurred` instead: the moment the probe "
        "measured, before it read the other metrics and emitted. step -> Slack: from the "
        "server's receipt of each firing, resolved, granted, deletion started and completed "
        "event to its message at the stand-in."
    )
    print(facts(load_at_start))


if __name__ == "__main__":
    main()
