"""The whole loop, as a self-hoster runs it, on a fresh server per test (SQLite and PostgreSQL).

Old history over the shipped automation's thresholds; the served metric probe
(on its schedule) fires; ``janitor-cleanup-when-old-runs-pile-up`` runs the
served ``database-cleanup`` deployment; a person approves through the API call
the Prefect UI's form makes, or the AI reviewer approves (a scripted model
with the real MCP tools, see ``tests/helpers/reviewed_cleanup.py``); the runs are deleted;
the shipped notification automations post every step to a Slack stand-in;
and the next probe runs resolve both metrics. Nothing is called in-process
but the seeding, the sync and the person's answer.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from flows.devstack.console import SlackConsole
from flows.devstack.served import Served
from flows.devstack.server import LocalServer, request
from flows.history.seed import RunSpec, make_history
from helpers import ROOT
from helpers.cleanup import paused_cleanups, surviving
from helpers.servers import fresh_server, metric_filter, wait_for_events
from triggers.sync import Mode, sync_automations

FLOW = "janitor-loop"
RULES = ("old-finished-runs", "log-rows")
#: The shipped automation's thresholds, below the seeded history and above what is
#: left after the cleanup (with the logs the probe and cleanup write meanwhile).
ENVIRONMENT = {
    "JANITOR_OLD_RUNS_LIMIT": "20",
    "JANITOR_LOG_ROWS_LIMIT": "300",
    "JANITOR_PROBE_INTERVAL": "10",
}
BEFORE_APPROVAL = [
    "janitor.metric.firing",
    "janitor.metric.firing",
    "janitor.approval.requested",
]
AFTER_APPROVAL = [
    "janitor.approval.granted",
    "janitor.deletion.started",
    "janitor.deletion.completed",
]
RESOLVED = "janitor.metric.resolved"


@dataclass
class History:
    old: list[UUID]
    protected: list[UUID]
    recent: list[UUID]


@dataclass
class Loop:
    server: LocalServer
    slack: SlackConsole
    history: History


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalServer]:
    with fresh_server(request.param, tmp_path / "server") as server:
        yield server


def seed(server: LocalServer) -> History:
    """25 finished runs 40-60 days old with 20 log lines each (28 old runs, 500+ log rows
    against limits of 20 and 300), 3 as old but protected, 5 recent."""
    old = [RunSpec(FLOW, "Completed", ago=timedelta(days=40 + i), logs=20) for i in range(20)]
    old += [RunSpec(FLOW, "Failed", ago=timedelta(days=45), logs=20)] * 5
    protected = [RunSpec(FLOW, ago=timedelta(days=50), tags=["keep"], logs=2)] * 3
    recent = [RunSpec(FLOW, ago=timedelta(days=1), logs=2)] * 5
    ids = asyncio.run(make_history(server.api_url, server.database_url, old + protected + recent))
    return History(old=ids[:25], protected=ids[25:28], recent=ids[28:])


@contextmanager
def running(server: LocalServer, tmp_path: Path, approval: str, *serve_args: str) -> Iterator[Loop]:
    """Seeded history, the deployments served, the shipped automations synced."""
    history = seed(server)
    slack = SlackConsole(sink=lambda _line: None).start()
    environ = {
        **os.environ,
        **ENVIRONMENT,
        "SLACK_WEBHOOK_URL": slack.url,
        "JANITOR_OLD_RUNS_APPROVAL": approval,
    }
    served = Served(
        server.api_url,
        tmp_path / "serve.log",
        {
            **environ,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": server.database_url,
            "PREFECT_HOME": str(tmp_path / "worker"),
        },
        command=[sys.executable, "-m", "flows.serve", *serve_args],
    )
    try:
        served.start().wait()
        outcome = asyncio.run(
            sync_automations(
                ROOT / "automations", api_url=server.api_url, mode=Mode.APPLY, environ=environ
            )
        )
        assert outcome.error is None, outcome.error
        yield Loop(server, slack, history)
    finally:
        served.stop()
        slack.stop()


def wait_for_messages(slack: SlackConsole, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(slack.received) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(slack.received) >= count, [m.get("text") for m in slack.received]


def messages(loop: Loop) -> list[tuple[str, dict[str, Any]]]:
    """(event name, message) for each Slack message, in the order the server got the events.

    Not the order of arrival: Prefect's actions service runs two webhook calls at a
    time and, under load, a message can overtake the one before it (seen here when
    the suite ran on two workers: `deletion.completed` before `deletion.started`).
    """
    received = list(loop.slack.received)
    ids = [_event_id(message) for message in received]
    assert len(set(ids)) == len(ids), "no message twice"
    events = asyncio.run(
        wait_for_events(
            loop.server.api_url, {"id": {"id": ids}}, lambda found: len(found) == len(ids)
        )
    )
    by_id = {event["id"]: event for event in events}
    received.sort(key=lambda message: by_id[_event_id(message)]["received"])
    return [(by_id[_event_id(message)]["event"], message) for message in received]


def steps(found: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The cleanup's and the probe's steps in order; the metrics' resolution last.

    A probe run may measure between the deletion's commit and the cleanup's
    `deletion.completed` (emitted a second later at the earliest), so the two
    resolutions must only come after `deletion.started`, two of them.
    """
    names = [name for name, _ in found]
    if RESOLVED in names:
        assert names.count(RESOLVED) == 2, names
        assert names.index(RESOLVED) > names.index("janitor.deletion.started"), names
    return [name for name in names if name != RESOLVED]


def _event_id(message: dict[str, Any]) -> str:
    (block_id,) = [
        block["block_id"]
        for block in message["blocks"]
        if block.get("block_id", "").startswith("janitor-event-")
    ]
    return str(block_id).removeprefix("janitor-event-")


def text_of(found: list[tuple[str, dict[str, Any]]], step: str) -> str:
    """The one message of ``step``, as text to search."""
    (message,) = [message for name, message in found if name == step]
    return str(message)


def cleanup_runs(api_url: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{api_url}/flow_runs/filter",
        json={"flows": {"name": {"any_": ["database-cleanup"]}}, "sort": "START_TIME_ASC"},
        timeout=30,
    )
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()
    return runs


def check_the_end(loop: Loop) -> None:
    """Old runs gone, protected and recent ones kept, both metrics resolved, one cleanup."""
    history = loop.history
    api_url = loop.server.api_url
    left = asyncio.run(surviving(api_url, history.old + history.protected + history.recent))
    assert left == set(history.protected + history.recent)
    for rule in RULES:
        resolved = asyncio.run(
            wait_for_events(
                api_url,
                metric_filter(f"janitor.metric.{rule}", "resolved"),
                lambda found: len(found) >= 1,
                timeout=60,
            )
        )
        assert len(resolved) == 1, f"{rule} resolves once"
    (run,) = cleanup_runs(api_url)
    assert run["state_type"] == "COMPLETED"


def test_a_person_approves_and_the_loop_closes(fresh: LocalServer, tmp_path: Path) -> None:
    with running(fresh, tmp_path, "human") as loop:
        (waiting,) = asyncio.run(paused_cleanups(fresh.api_url, 1, timeout=120))
        wait_for_messages(loop.slack, 3)
        found = messages(loop)
        assert steps(found) == BEFORE_APPROVAL
        asked = text_of(found, "janitor.approval.requested")
        assert "Delete 25 flow runs" in asked
        assert "3 kept for a protected tag" in asked
        assert "janitor-approve" in asked, "a person gets the buttons"

        # What the Prefect UI sends when someone fills in the form and presses Resume.
        answer = {"approve": True, "notes": "old load-test runs", "approver": "ada"}
        with httpx.Client(base_url=fresh.api_url, timeout=30) as client:
            body = {"run_input": answer}
            resumed = request(client, "POST", f"/flow_runs/{waiting}/resume", body)
        assert resumed.json()["status"] == "ACCEPT", resumed.text

        wait_for_messages(loop.slack, 8)
        found = messages(loop)
        assert steps(found) == BEFORE_APPROVAL + AFTER_APPROVAL
        granted = text_of(found, "janitor.approval.granted")
        started = text_of(found, "janitor.deletion.started")
        completed = text_of(found, "janitor.deletion.completed")
        assert "ada" in granted
        assert "old load-test runs" in granted
        assert "Deleting 25 flow runs" in started
        assert "Deleted 25 flow runs" in completed
        check_the_end(loop)


def test_the_ai_approves_and_the_loop_closes(fresh: LocalServer, tmp_path: Path) -> None:
    entrypoint = "tests/helpers/reviewed_cleanup.py:database_cleanup"
    with running(fresh, tmp_path, "ai", "--cleanup-entrypoint", entrypoint) as loop:
        wait_for_messages(loop.slack, 8, timeout=180)
        found = messages(loop)
        assert steps(found) == BEFORE_APPROVAL + AFTER_APPROVAL
        asked = text_of(found, "janitor.approval.requested")
        granted = text_of(found, "janitor.approval.granted")
        assert "AI reviewer" in asked
        assert "janitor-approve" not in asked, "nobody is asked to click"
        assert "*Confidence:* 95%" in granted
        assert "get_flow_runs shows" in granted
        assert "as COMPLETED" in granted or "as FAILED" in granted
        assert "Deleted 25 flow runs" in text_of(found, "janitor.deletion.completed")
        check_the_end(loop)
