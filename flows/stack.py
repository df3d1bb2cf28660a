"""The one-command local stack: a Prefect server on SQLite, Slack printed, automations synced.

Everything lives in a project-local folder (``.janitor/``) and binds to
127.0.0.1 only. The cleanup and metric-probe deployments are served from one
process beside the server, before sync, so the automations can name them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flows.localserver import LocalServer, sqlite_url
from flows.serve import CLEANUP, PROBE, Served
from flows.slackconsole import SlackConsole
from triggers.plan import Plan
from triggers.sync import Mode, Outcome, sync

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    """What the local stack started, so it can be stopped in reverse order."""

    home: Path
    port: int = 4200
    say: Callable[[str], None] = print
    server: LocalServer | None = None
    slack: SlackConsole | None = None
    served: Served | None = None
    environ: dict[str, str] = field(default_factory=dict)

    def start(
        self,
        automations: Path = ROOT / "automations",
        on_plan: Callable[[Plan], None] | None = None,
    ) -> Outcome:
        self.home.mkdir(parents=True, exist_ok=True)
        self.environ = dict(os.environ)
        if not self.environ.get("SLACK_WEBHOOK_URL"):
            self.slack = SlackConsole(self.say).start()
            self.environ["SLACK_WEBHOOK_URL"] = self.slack.url
            self.say(f"SLACK_WEBHOOK_URL is not set: Slack messages print here ({self.slack.url})")
        self.server = LocalServer(
            self.home / "server", sqlite_url(self.home / "prefect.db"), port=self.port, ui=True
        )
        self.say(f"starting Prefect server on {self.server.ui_url} (log: {self.server.log_path})")
        self.server.start().wait()
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
        self.served.start().wait()
        outcome = asyncio.run(
            sync(
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
        return outcome

    def stop(self) -> None:
        if self.served is not None:
            self.served.stop()
        if self.server is not None:
            self.server.stop()
        if self.slack is not None:
            self.slack.stop()
