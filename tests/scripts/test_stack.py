"""The README's first command, as a person runs it: `scripts/stack.py` in a terminal.

Started as a subprocess in its own process group, read line by line, stopped
with SIGINT (Ctrl-C) or killed. These tests start real servers and serve the
real deployments, so each covers a whole story.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.devstack.processes import free_port, group_alive
from flows.devstack.server import request
from helpers import ROOT


class Terminal:
    """A stack.py process and what it printed."""

    def __init__(self, *args: str) -> None:
        environ = {k: v for k, v in os.environ.items() if k != "SLACK_WEBHOOK_URL"}
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "stack.py"), *args],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )
        self.lines: list[str] = []
        self.ended = False
        self._new: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        """The first line, printed so far or to come, that matches ``pattern``."""
        deadline = time.monotonic() + timeout
        index = 0
        while True:
            for line in self.lines[index:]:
                if found := re.search(pattern, line):
                    return found
            index = len(self.lines)
            remaining = deadline - time.monotonic()
            if self.ended or remaining <= 0:
                ending = "\n".join(self.lines[-40:])
                raise AssertionError(f"no line matches {pattern!r}; the output ends:\n{ending}")
            try:
                new = self._new.get(timeout=remaining)
            except queue.Empty:
                continue
            if new is None:
                self.ended = True
            else:
                self.lines.append(new)

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a terminal sends it to the foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout)

    def output(self) -> str:
        """Everything it printed, once it has exited."""
        self.process.wait(60)
        while not self.ended:
            line = self._new.get(timeout=10)
            if line is None:
                self.ended = True
            else:
                self.lines.append(line)
        return "\n".join(self.lines)


@contextmanager
def terminal(*args: str, owns_home: bool = True) -> Iterator[Terminal]:
    """A stack.py process, stopped with Ctrl-C afterwards if the test left it running (and
    killed if that does not stop it). With ``owns_home``, whatever its folder's record
    still names is killed too, so a failed test leaves no server behind."""
    opened = Terminal(*args)
    try:
        yield opened
    finally:
        if opened.process.poll() is None:
            try:
                opened.interrupt()
            except subprocess.TimeoutExpired:
                os.killpg(opened.process.pid, signal.SIGKILL)
                opened.process.wait(30)
        home = Path(args[args.index("--home") + 1])
        for folder in (home, home / "demo") if owns_home else ():
            for group in recorded(folder):
                if group_alive(group):
                    os.killpg(group, signal.SIGKILL)


def recorded(folder: Path) -> list[int]:
    """The process groups a stack's record names."""
    try:
        record = json.loads((folder / "stack.json").read_text())
    except (OSError, ValueError):
        return []
    return [int(group["pid"]) for group in record["process_groups"]]


def snapshot(api: str) -> dict[str, Any]:
    """What must not be duplicated by a second start."""
    with httpx.Client(base_url=api, timeout=30) as client:
        automations = client.post("/automations/filter", json={}).json()
        deployments = client.post("/deployments/filter", json={}).json()
        blocks = client.post(
            "/block_documents/filter", json={"block_documents": {"is_anonymous": {"eq_": False}}}
        ).json()
        variables = client.post(
            "/variables/filter", json={"variables": {"name": {"like_": "janitor-metric-rule-"}}}
        ).json()
        probe = next(d for d in deployments if d["name"] == "metric-probe")
        scheduled = client.post(
            "/flow_runs/filter",
            json={
                "flow_runs": {
                    "deployment_id": {"any_": [probe["id"]]},
                    "state": {"type": {"any_": ["SCHEDULED"]}},
                },
                "limit": 200,
            },
        ).json()
    return {
        "automations": sorted((a["name"], a["id"]) for a in automations),
        "deployments": sorted((d["name"], d["id"]) for d in deployments),
        "blocks": sorted((b["name"], b["id"]) for b in blocks),
        "variables": sorted((v["name"], v["id"]) for v in variables),
        "schedules": len(probe["schedules"]),
        "scheduled_times": [r["expected_start_time"] for r in scheduled],
    }


def post_events(api: str) -> None:
    """A crashed run, a cleanup with nothing to do and a firing metric: three messages."""
    run_id = uuid.uuid4()
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "id": str(uuid.uuid4()),
            "occurred": now,
            "event": "prefect.flow-run.Crashed",
            "resource": {
                "prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.name": "tidy-<otter>",
                "prefect.state-message": "exit code 137",
            },
        },
        {
            "id": str(uuid.uuid4()),
            "occurred": now,
            "event": "janitor.cleanup.nothing-to-do",
            "resource": {"prefect.resource.id": f"janitor.cleanup.{run_id}"},
            "payload": {"cutoff": "2026-10-23T14:00:00+00:00", "protected": 0},
        },
        {
            "id": str(uuid.uuid4()),
            "occurred": now,
            "event": "janitor.metric.firing",
            "resource": {"prefect.resource.id": "janitor.metric.old-finished-runs"},
            "payload": {
                "metric": "flow_runs.count",
                "operator": ">",
                "value_text": "52,000",
                "threshold_text": "10,000",
                "condition": "flow_runs.count > 10,000",
                "rule": "old-finished-runs",
            },
        },
    ]
    with httpx.Client(base_url=api, timeout=30) as client:
        request(client, "POST", "/events", events).raise_for_status()


def test_stack_starts_serves_prints_stops_and_starts_again_without_duplicates(
    tmp_path: Path,
) -> None:
    port, home = free_port(), tmp_path / "state"
    api = f"http://127.0.0.1:{port}/api"
    args = ("--port", str(port), "--home", str(home))
    with terminal(*args) as first:
        first.wait_for(r"^Ready\. Prefect UI: http://127\.0\.0\.1:\d+$")
        first.wait_for(r"Slack messages print here")
        assert (home / "prefect.db").exists(), "SQLite in the project-local folder"
        before = snapshot(api)
        names = {name for name, _ in before["automations"]}
        assert {"janitor-cleanup-when-database-is-large", "janitor-notify-metric"} <= names
        assert {name for name, _ in before["variables"]} >= {
            "janitor-metric-rule-old-finished-runs",
            "janitor-metric-rule-log-rows",
        }
        # The scheduler plans the probe ahead (it did not, silently, with SQLAlchemy 2.1).
        deadline = time.monotonic() + 90
        while not before["scheduled_times"] and time.monotonic() < deadline:
            time.sleep(2)
            before = snapshot(api)
        assert before["scheduled_times"], "the probe's schedule produced no runs"
        # The probe run at start-up reached the server's database.
        measured = httpx.post(
            f"{api}/events/filter",
            json={"filter": {"event": {"name": ["janitor.metric.measured"]}}},
        ).json()["events"]
        deadline = time.monotonic() + 60
        while not measured and time.monotonic() < deadline:
            time.sleep(1)
            measured = httpx.post(
                f"{api}/events/filter",
                json={"filter": {"event": {"name": ["janitor.metric.measured"]}}},
            ).json()["events"]
        resources = {event["resource"]["prefect.resource.id"] for event in measured}
        assert "janitor.measurement.database.size_bytes" in resources

        # Slack messages print in the terminal (automations reach the triggers service
        # a moment after they are created, so the events are sent until they arrive).
        for _ in range(15):
            post_events(api)
            try:
                first.wait_for(r"== .*Metric over its threshold", timeout=2)
                break
            except AssertionError:
                continue
        first.wait_for(r"Flow run \*tidy-<otter>\* crashed")
        first.wait_for(r"Nothing to clean")

        # A second stack on the same folder, or on the same port, is refused at once.
        with terminal(
            "--port", str(free_port()), "--home", str(home), owns_home=False
        ) as same_home:
            assert same_home.process.wait(60) == 5
            assert "another local stack is running from" in same_home.output()
        with terminal("--port", str(port), "--home", str(tmp_path / "other")) as same_port:
            assert same_port.process.wait(60) == 5
            assert f"something already listens on 127.0.0.1:{port}" in same_port.output()

        # Killed, not stopped: the server and the served deployments are orphaned.
        groups = recorded(home)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(30)
        assert all(group_alive(group) for group in groups)

        with terminal(*args) as second:
            second.wait_for(r"stopping what an earlier stack left running")
            second.wait_for(r"^Summary: 0 to create, 0 to update, 0 to delete")
            second.wait_for(r"^Ready\.")
            assert not any(group_alive(group) for group in groups)
            after = snapshot(api)
            assert after["automations"] == before["automations"]
            assert after["deployments"] == before["deployments"]
            assert after["blocks"] == before["blocks"]
            assert after["variables"] == before["variables"]
            assert after["schedules"] == 1
            times = after["scheduled_times"]
            assert len(times) == len(set(times)), "no probe run is planned twice"

            assert second.interrupt() == 0
            output = second.output()
            assert output.splitlines()[-1] == "stopped."
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)
    assert not (home / "stack.json").exists()


def test_demo_fires_asks_and_deletes_after_the_printed_command(tmp_path: Path) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    started = time.monotonic()
    with terminal("--demo", "--port", str(port), "--home", str(tmp_path)) as demo:
        demo.wait_for(r"^demo: 1,500 finished runs")
        demo.wait_for(r"== .*Metric over its threshold", timeout=120)
        demo.wait_for(r"\*Delete 1,500 flow runs\*", timeout=120)
        command = demo.wait_for(r"Or here: (PREFECT_API_URL=\S+) (\S+) (scripts/approve\.py \S+)")
        asked = time.monotonic() - started
        assert asked < 120, f"the approval request came {asked:.0f} s after the start"
        run_id = command.group(3).split()[-1]
        page = f"http://127.0.0.1:{port}/runs/flow-run/{run_id}"
        ui = httpx.get(page, headers={"Accept": "text/html"}, timeout=10)  # as a browser asks
        assert ui.status_code == 200, "the UI serves the paused run's page"
        assert "<html" in ui.text

        env = {**os.environ, command.group(1).split("=", 1)[0]: command.group(1).split("=", 1)[1]}
        approve = [command.group(2), *command.group(3).split(), "--notes", "demo"]
        done = subprocess.run(approve, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("approved cleanup")

        demo.wait_for(r"== .*Cleanup approved")
        demo.wait_for(r"\*Deleted 1,500 flow runs\*", timeout=120)
        left = httpx.post(
            f"{api}/flow_runs/count", json={"flows": {"name": {"any_": ["janitor-demo"]}}}
        ).json()
        assert left == 15, "the 5 protected and 10 recent demo runs stay"
        assert demo.interrupt() == 0
    assert (tmp_path / "demo" / "prefect.db").exists(), "the demo keeps to its own folder"
    assert not (tmp_path / "prefect.db").exists()
