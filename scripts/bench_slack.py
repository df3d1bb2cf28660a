"""Benchmark Slack notifications: from a cleanup step event emitted to its Slack message received.

    python scripts/bench_slack.py [--events 50] [--gap 0.1] [--backends sqlite,postgres]
        [--no-stress] [--quick]

Why: each cleanup step reaches Slack through the shipped notification automations (triggers
service -> actions service -> Jinja template -> call-webhook); a person asked to approve a
cleanup should see it within a second. Target: p95 < 1 s. Per backend (SQLite; PostgreSQL at
127.0.0.1:5432 when reachable): a fresh `prefect server start` on a scratch database, a Slack
stand-in (SlackConsole), the janitor-notify-* automations for cleanup steps synced to post to
it; then --events step events emitted as the cleanup does (StepEvents over emit_event; whole
cleanup paths cycled over every notified step, a real flow run per path, payloads from
automations/templates/*.sample.json). The target row emits them as a cleanup does, at least
NOTIFY_GAP_SECONDS apart (flows/events.py says why); two stress rows then emit --gap s apart
and in one burst, faster than one cleanup ever does, to show the server's own throughput.
Each message names its event in a block_id: latency = its arrival - the emit call. One
warm-up event goes first.
Progress goes to stderr; a markdown table, with the target check, to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

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
from prefect.client.orchestration import SyncPrefectClient
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.devstack.console import SlackConsole
from flows.devstack.server import LocalServer
from flows.events import NOTIFY_GAP_SECONDS, CleanupStep, StepEvents
from triggers.load.bundle import load_bundle
from triggers.sync import Mode, sync_automations

TARGET_SECONDS = 1.0
WAIT_SECONDS = 60.0  # for the last message of a run
SETTLE_SECONDS = 2.0  # around a run: the automation events of its actions are processed
FAILED = "prefect.automation.action.failed"
AUTOMATIONS = Path(__file__).resolve().parent.parent / "automations"
#: The cleanup's paths, each a run's step events in order; together every notified step.
PATHS: tuple[tuple[CleanupStep, ...], ...] = (
    (
        CleanupStep.APPROVAL_REQUESTED,
        CleanupStep.APPROVAL_GRANTED,
        CleanupStep.DELETION_STARTED,
        CleanupStep.DELETION_COMPLETED,
    ),
    (CleanupStep.APPROVAL_REQUESTED, CleanupStep.APPROVAL_REJECTED),
    (CleanupStep.APPROVAL_REQUESTED, CleanupStep.APPROVAL_TIMED_OUT),
    (CleanupStep.APPROVAL_GRANTED, CleanupStep.DELETION_STARTED, CleanupStep.DELETION_FAILED),
    (CleanupStep.NOTHING_TO_DO,),
    (CleanupStep.SKIPPED,),
)
FlowRuns = Iterator[tuple[UUID, str]]


@dataclass
class Run:
    label: str
    sent: int
    latencies: list[float]  # seconds, of the messages received, in emission order
    overtaken: int  # messages that arrived after the message of a later-emitted event
    missing: list[str]  # names of the events whose message never came
    duplicates: int
    per_second: float  # messages received / (last arrival - first emit)
    failed: Counter[str]  # the server's prefect.automation.action.failed events, by reason


def samples() -> dict[str, list[dict[str, Any]]]:
    """Realistic payloads per event name, from the templates' sample files."""
    found: dict[str, list[dict[str, Any]]] = {}
    for file in sorted((AUTOMATIONS / "templates").glob("*.sample.json")):
        loaded = json.loads(file.read_text())
        for sample in loaded if isinstance(loaded, list) else [loaded]:
            found.setdefault(sample["event"], []).append(sample.get("payload", {}))
    return found


def plan(count: int) -> list[tuple[int, CleanupStep]]:
    """(path number, step) for ``count`` events: whole cleanup paths, cycled."""
    steps = itertools.chain.from_iterable(
        [(number, step) for step in PATHS[number % len(PATHS)]] for number in itertools.count()
    )
    return list(itertools.islice(steps, count))


def event_of(message: Any) -> str | None:
    """The event id a message names in its ``janitor-event-<id>`` block."""
    for block in message.get("blocks") or [] if isinstance(message, dict) else []:
        block_id = str(block.get("block_id") or "") if isinstance(block, dict) else ""
        if block_id.startswith("janitor-event-"):
            return block_id.removeprefix("janitor-event-")
    return None


def flow_runs(api_url: str, count: int) -> FlowRuns:
    """Real cleanup flow runs, so the templates' ``flow_run`` resolves as in production; made
    before any measurement (each emits a Pending event). The client retries SQLite's 503s."""
    with SyncPrefectClient(api_url) as client:
        body = {"flow_id": str(client.create_flow_from_name("database-cleanup"))}
        made = [client.request("POST", "/flow_runs/", json=body).json() for _ in range(count)]
    return iter([(UUID(run["id"]), run["name"]) for run in made])


def failed_actions(api_url: str, since: datetime) -> Counter[str]:
    """Why the server's actions failed since ``since`` (webhook calls that raised)."""
    occurred = {"since": since.isoformat()}
    body = {"filter": {"occurred": occurred, "event": {"name": [FAILED]}}, "limit": 50}
    with httpx.Client(base_url=api_url, timeout=30, trust_env=False) as client:
        page = client.post("/events/filter", json=body).raise_for_status().json()
    return Counter(str(event["payload"].get("reason")) for event in page["events"])


def measure(
    api_url: str, console: SlackConsole, runs: FlowRuns, label: str, count: int, gap: float
) -> Run:
    time.sleep(SETTLE_SECONDS)
    since = datetime.now(UTC)
    steps = plan(count)
    cleanups = [StepEvents(*next(runs)) for _ in range(steps[-1][0] + 1)]
    for cleanup in cleanups:
        cleanup.gap = 0.0  # the spacing is this benchmark's to set
    payloads, used = samples(), Counter[str]()
    seen = len(console.received)  # earlier runs' messages are not this run's
    emitted: list[tuple[str, str, float]] = []  # event id, name, time.monotonic() of the emit
    begin = time.monotonic()
    for index, (number, step) in enumerate(steps):
        time.sleep(max(0.0, begin + index * gap - time.monotonic()))
        options = payloads[step.value]
        payload, used[step] = options[used[step] % len(options)], used[step] + 1
        at = time.monotonic()
        event = asyncio.run(cleanups[number].emit(step, payload))
        if event is None:
            raise RuntimeError("emit_event emitted nothing: is PREFECT_API_URL set?")
        emitted.append((str(event.id), step.value, at))
    EventsWorker.drain_all(timeout=30, at_exit=False)  # all sent; the next emit restarts it
    rank = {event_id: index for index, (event_id, _, _) in enumerate(emitted)}
    arrivals: dict[str, float] = {}
    duplicates, deadline = 0, time.monotonic() + WAIT_SECONDS
    while len(arrivals) < len(rank) and time.monotonic() < deadline:
        time.sleep(0.02)
        received = console.received  # .arrived is appended first: pair up to both lengths
        ready = min(len(received), len(console.arrived))
        for message, arrived in zip(received[seen:ready], console.arrived[seen:ready], strict=True):
            if (event_id := event_of(message)) is not None and event_id in rank:
                duplicates += event_id in arrivals
                arrivals.setdefault(event_id, arrived)
        seen = ready
    overtaken, latest = 0, -1
    for event_id in sorted(arrivals, key=arrivals.__getitem__):
        overtaken += rank[event_id] < latest
        latest = max(latest, rank[event_id])
    latencies = [arrivals[e] - at for e, _, at in emitted if e in arrivals]
    missing = [name for event_id, name, _ in emitted if event_id not in arrivals]
    span = max(arrivals.values(), default=begin) - begin
    rate = len(arrivals) / span if span > 0 else 0.0
    time.sleep(SETTLE_SECONDS)  # the last actions' events are written
    failed = failed_actions(api_url, since)
    return Run(label, len(emitted), latencies, overtaken, missing, duplicates, rate, failed)


async def notifications(api_url: str, webhook: str) -> None:
    """The shipped cleanup-step automations, posting to ``webhook``, as sync applies them."""
    environ = {**os.environ, "SLACK_WEBHOOK_URL": webhook}
    steps = load_bundle(AUTOMATIONS, environ=environ).tagged("cleanup-steps")
    outcome = await sync_automations(
        AUTOMATIONS, api_url=api_url, mode=Mode.APPLY, only=steps, environ=environ
    )
    if outcome.error is not None:
        raise RuntimeError(f"sync failed: {outcome.error}")


def bench(backend: str, args: argparse.Namespace, work: Path, into: list[tuple[str, Run]]) -> None:
    """Measure on one backend into ``into``, so what was measured survives a Ctrl-C."""
    db = create(backend, work, "slack")
    console = SlackConsole(sink=lambda _line: None).start()
    try:
        with LocalServer(work / backend, db.url) as server:
            say(f"{backend}: server at {server.api_url}; syncing the notification automations")
            asyncio.run(notifications(server.api_url, console.url))
            planned = [("cleanup", NOTIFY_GAP_SECONDS)]
            planned += [("spaced", args.gap), ("burst", 0.0)] if args.stress else []
            per_run = plan(args.events)[-1][0] + 1
            runs = flow_runs(server.api_url, 1 + len(planned) * per_run)
            with temporary_settings({PREFECT_API_URL: server.api_url}):
                try:
                    warm = measure(server.api_url, console, runs, "warm-up", 1, 0.0)
                    say(f"  warm-up, 1 event: {describe(warm)}")
                    for label, gap in planned:
                        run = measure(server.api_url, console, runs, label, args.events, gap)
                        into.append((backend, run))
                        say(f"  {args.events} events, {label}: {describe(run)}")
                finally:
                    EventsWorker.drain_all(timeout=5, at_exit=False)
    finally:
        console.stop()
        drop(db)


# -- the report ---------------------------------------------------------------------------


def describe(run: Run) -> str:
    figures = "p50 {:.2f} s, p95 {:.2f} s, max {:.2f} s".format(*stats(run.latencies) or [0] * 3)
    return figures + (f"; missing: {', '.join(run.missing)}" if run.missing else "")


def markdown(results: list[tuple[str, Run]], gap: float) -> str:
    head = ["backend", "emits", "n", "received", "p50 s", "p95 s", "max s", "out of order"]
    head += ["msgs/s", "failed calls", f"p95 < {TARGET_SECONDS:g} s"]
    rows = [head, ["---"] * len(head)]
    for backend, run in results:
        found = stats(run.latencies)
        met = "yes" if found and found[1] < TARGET_SECONDS and not run.missing else "NO"
        emits = {
            "cleanup": f"as a cleanup: {NOTIFY_GAP_SECONDS:g} s apart",
            "spaced": f"stress: {gap * 1000:.0f} ms apart",
        }.get(run.label, "stress: one burst")
        cells = [f"{value:.2f}" for value in found] or ["-"] * 3
        counts = [str(run.sent), str(len(run.latencies)), *cells, str(run.overtaken)]
        verdict = met if run.label == "cleanup" else f"info: {met}"
        failed = str(sum(run.failed.values()))
        rows.append([backend, emits, *counts, f"{run.per_second:.1f}", failed, verdict])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=50, help="step events a run")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between stress emits")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-stress", dest="stress", action="store_false", help="target row only")
    parser.add_argument("--quick", action="store_true", help="20 events, target row only")
    args = parser.parse_args()
    if args.quick:
        args.events, args.stress = 20, False
    args.backends = backends(parser, args.backends)
    return args


def main() -> None:
    args = parse_args()
    load_at_start = load()
    results: list[tuple[str, Run]] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="janitor-bench-slack-") as tmp:
        try:
            for backend in args.backends:
                if backend == "postgres" and not reachable():
                    skipped.append(f"postgres: skipped, PostgreSQL is not reachable at {POSTGRES}")
                    say(skipped[-1])
                    continue
                bench(backend, args, Path(tmp), results)
        except KeyboardInterrupt:
            say("interrupted: the results so far follow")
        finally:
            drop_all()
    print(markdown(results, args.gap), *skipped, sep="\n")
    for backend, run in results:
        failed = ", ".join(f"{n} x {reason}" for reason, n in run.failed.items()) or "none"
        print(f"- {backend} {run.label}: missing: {', '.join(run.missing) or 'none'}; ", end="")
        print(f"duplicate messages: {run.duplicates}; failed webhook calls: {failed}")
    print("\nlatency: Slack message arrival - emit_event call (this process's time.monotonic());")
    print("out of order: messages that arrived after the message of a later-emitted event;")
    print("msgs/s: messages received / (last arrival - first emit); failed calls: the server's")
    print(f"{FAILED} events during the run (the message of a failed call may have arrived).")
    print(facts(load_at_start))


if __name__ == "__main__":
    main()
