"""The one-command local stack: a Prefect server on SQLite, Slack printed, automations synced.

Everything lives in a project-local folder (``.janitor/``) and binds to
127.0.0.1 only. The cleanup and metric-probe deployments are served from one
process beside the server, before sync, so the automations can name them.
Starting again reuses what is there: the same database, the same
deployments, and sync finds the automations unchanged (``flows.devstack.folder``
keeps one stack per folder and stops what a killed one left running).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from flows.devstack.console import SlackConsole
from flows.devstack.folder import StackFolder, check_port
from flows.devstack.served import Served, drop_missed_runs
from flows.devstack.server import LocalServer, sqlite_url
from flows.errors import ServerFailedToStart, StackError
from flows.serve import CLEANUP, PROBE
from triggers.sync import Mode, Plan, SyncOutcome, sync_automations

ROOT = Path(__file__).resolve().parents[2]
"""The project folder: the stack runs from a clone, never from an installed wheel."""
WATCH_SECONDS = 2.0
SLACK_PORT_FILE = "slack-port"  # the Slack printer's port, kept for the next start


@dataclass
class Stack:
    """What the local stack started, so it can be stopped in reverse order."""

    home: Path
    port: int = 4200
    say: Callable[[str], None] = print
    demo: bool = False
    server: LocalServer | None = None
    slack: SlackConsole | None = None
    served: Served | None = None
    environ: dict[str, str] = field(default_factory=dict)
    _folder: StackFolder | None = field(default=None, init=False)
    _watch: ApprovalWatch | None = field(default=None, init=False)

    def start(
        self,
        automations: Path = ROOT / "automations",
        on_plan: Callable[[Plan], None] | None = None,
    ) -> SyncOutcome:
        """Start everything, sync, and say what sync did; the bundle's errors only."""
        try:
            return self._start(automations, on_plan)
        except OSError as exc:  # a folder or port this user cannot use
            raise StackError(f"{type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ServerFailedToStart(f"the local server failed: {exc}") from exc

    def _start(self, automations: Path, on_plan: Callable[[Plan], None] | None) -> SyncOutcome:
        self._folder = folder = StackFolder(self.home)
        folder.lock()
        stopped = folder.stop_leftovers(self.say)
        check_port(self.port, wait=15.0 if stopped else 0.0)
        if self.demo:
            folder.reset()
        self.environ = dict(os.environ)
        if self.demo:
            from flows.devstack.demo import ENVIRONMENT

            self.environ.update(ENVIRONMENT)
        if not self.environ.get("SLACK_WEBHOOK_URL"):
            self.slack = _slack_console(self.say, self.home / SLACK_PORT_FILE, self.port + 1)
            self.environ["SLACK_WEBHOOK_URL"] = self.slack.url
            self.say(f"SLACK_WEBHOOK_URL is not set: Slack messages print here ({self.slack.url})")
        self.server = LocalServer(
            self.home / "server", sqlite_url(self.home / "prefect.db"), port=self.port, ui=True
        )
        self.say(f"starting Prefect server on {self.server.ui_url} (log: {self.server.log_path})")
        self.server.start()
        self._remember()
        self.server.wait()
        if self.demo:
            self._seed_demo()
        self.say(f"serving the deployments {CLEANUP} and {PROBE} (log: {self.home / 'serve.log'})")
        self.served = Served(
            self.server.api_url,
            self.home / "serve.log",
            {
                **self.environ,
                # The probe and the cleanup read the server's database directly.
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.server.database_url,
                "PREFECT_HOME": str(self.home / "worker"),
            },
        )
        dropped = drop_missed_runs(self.server.api_url, PROBE)
        if dropped:
            self.say(f"dropped {dropped} probe runs missed while the stack was down")
        self.served.start()
        self._remember()
        self.served.wait()
        outcome = asyncio.run(
            sync_automations(
                automations,
                api_url=self.server.api_url,
                mode=Mode.APPLY,
                environ=self.environ,
                on_plan=on_plan,
            )
        )
        if outcome.error is None:
            # Measure once now rather than at the scheduler's next tick, so the
            # rules just published are evaluated (and their metrics shown) at once.
            self.served.run_now(PROBE)
            self._watch = ApprovalWatch(self.server.api_url, self.server.ui_url, self.say).start()
        return outcome

    def _seed_demo(self) -> None:
        from flows.devstack.demo import FLOW, seed_demo

        assert self.server is not None
        self.say(f"demo: seeding old history (flow {FLOW})...")
        seeded = asyncio.run(seed_demo(self.server.api_url, self.server.database_url))
        self.say(
            f"demo: {seeded.old:,} finished runs that ended 40-50 days ago ({seeded.logs:,} log "
            f"lines), {seeded.protected} as old but tagged 'keep', {seeded.recent} recent. "
            "Within a minute the probe finds more than JANITOR_OLD_RUNS_LIMIT="
            f"{self.environ['JANITOR_OLD_RUNS_LIMIT']} old runs and JANITOR_LOG_ROWS_LIMIT="
            f"{self.environ['JANITOR_LOG_ROWS_LIMIT']} log rows, "
            "janitor-cleanup-when-old-runs-pile-up starts the cleanup, and it asks you here."
        )

    def _remember(self) -> None:
        assert self._folder is not None
        self._folder.remember(p.pid for p in (self.server, self.served) if p is not None and p.pid)

    def stop(self) -> bool:
        """Stop what was started, newest first; whether anything was.

        Each part is stopped even when an earlier one fails to, so a failure does
        not leave the server running or the folder locked; the first failure is
        raised at the end.
        """
        started = any(p is not None for p in (self.server, self.served, self.slack))
        if started:
            self.say("stopping...")
        failures: list[Exception] = []
        for part in (self._watch, self.served, self.server, self.slack, self._folder):
            if part is None:
                continue
            stop = part.release if isinstance(part, StackFolder) else part.stop
            try:
                stop()
            except Exception as exc:  # stop the rest, then say what went wrong
                failures.append(exc)
        if failures:
            raise failures[0]
        return started


class ApprovalWatch:
    """Prints, once per cleanup, how to answer it when it starts waiting for approval.

    The Slack message (printed above it when Slack is local) says what would be
    deleted; this says where to answer, for a person at the terminal.
    """

    def __init__(self, api_url: str, ui_url: str, say: Callable[[str], None]) -> None:
        self.api_url = api_url
        self.ui_url = ui_url
        self.say = say
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="approval-watch", daemon=True)

    def start(self) -> ApprovalWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        from prefect.client.orchestration import PrefectClient

        from flows.cleanup.approval import waiting

        seen: set[str] = set()
        async with PrefectClient(self.api_url) as client:
            while not self._stopping.is_set():
                try:
                    runs = await waiting(client)
                except Exception:  # the server is stopping, or busy: look again shortly
                    runs = []
                for run in runs:
                    if str(run.id) in seen:
                        continue
                    seen.add(str(run.id))
                    self.say(
                        f">> cleanup {run.name} is waiting for your approval.\n"
                        f"   In the Prefect UI: {self.ui_url}/runs/flow-run/{run.id} "
                        "(Resume, tick approve)\n"
                        f"   Or here: PREFECT_API_URL={self.api_url} {approve_command()} "
                        f"{run.id}   (add --reject to refuse)"
                    )
                await asyncio.to_thread(self._stopping.wait, WATCH_SECONDS)


def approve_command() -> str:
    """How to run scripts/approve.py: short paths from the project's folder (the README's
    way), absolute ones from anywhere else."""
    python, script = Path(sys.executable).absolute(), ROOT / "scripts" / "approve.py"
    if Path.cwd() != ROOT:
        return f"{python} {script}"
    shown = os.path.relpath(python, ROOT) if python.is_relative_to(ROOT) else str(python)
    return f"{shown} {script.relative_to(ROOT)}"


def _slack_console(say: Callable[[str], None], remembered: Path, first: int) -> SlackConsole:
    """The printer on the port it had last time (``first`` the first time) when that
    port is free, so the webhook block the sync stored still points at it and the
    re-sync writes nothing; another port (and a block update) only when it is taken."""
    try:
        port = int(remembered.read_text().strip())
    except (OSError, ValueError):
        port = first
    try:
        console = SlackConsole(say, port=port).start()
    except OSError:
        console = SlackConsole(say).start()
    remembered.write_text(f"{urlsplit(console.url).port}\n")
    return console
