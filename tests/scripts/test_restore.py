"""`python scripts/restore.py` as an operator runs it after a cleanup they regret:
list, dry run, restore, restore again; refused without the database; announced in
Slack through the shipped notify-restored automation."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flows.devstack.console import SlackConsole
from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history
from helpers import AUTOMATIONS, ROOT
from helpers.archive import DAY
from helpers.cleanup import release_slot, surviving
from helpers.faults import cleanup
from triggers.sync import Mode, sync_automations

pytestmark = pytest.mark.anyio


def restore(server: LocalServer, *args: str, database: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_DATABASE")}
    env["PREFECT_API_URL"] = server.api_url
    if database:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = server.database_url
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "restore.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def _slack_message(console: SlackConsole, text: str, timeout: float = 30) -> dict[str, Any]:
    for _ in range(int(timeout * 10)):
        for message in console.received:
            if text in message["text"]:
                return message
        await asyncio.sleep(0.1)
    raise AssertionError(f"no Slack message with {text!r}: {console.received}")


async def test_an_operator_lists_dry_runs_restores_and_restores_again_and_slack_hears_of_it(
    sqlite_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sqlite_server
    flow_name = f"restore-{tmp_path.name}"
    ids = await make_history(
        server.api_url,
        server.database_url,
        [RunSpec(flow_name, ago=DAY * 40, task_runs=2, logs=3) for _ in range(3)],
    )
    release_slot(server.api_url)
    await cleanup(
        server, "database", monkeypatch, flows=[flow_name], approval="none", archive=str(tmp_path)
    )
    assert await surviving(server.api_url, ids) == set()
    (archive,) = list(tmp_path.iterdir())
    console = SlackConsole(sink=lambda _line: None).start()
    environ = {**os.environ, "SLACK_WEBHOOK_URL": console.url}
    outcome = await sync_automations(
        Path(AUTOMATIONS),
        api_url=server.api_url,
        mode=Mode.APPLY,
        only={"janitor-notify-restored"},
        environ=environ,
    )
    assert outcome.error is None, outcome.error
    try:
        listed = restore(server, "--list", "--folder", str(tmp_path))
        assert listed.returncode == 0, listed.stderr
        assert archive.name in listed.stdout
        assert "flow_runs" in listed.stdout

        dry = restore(server, str(archive), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would restore" in dry.stdout
        assert await surviving(server.api_url, ids) == set()

        done = restore(server, str(archive))
        assert done.returncode == 0, done.stderr
        assert await surviving(server.api_url, ids) == set(ids)
        flow_runs = next(line for line in done.stdout.splitlines() if line.startswith("flow_run "))
        assert flow_runs.split()[1:3] == ["3", "0"]
        message = await _slack_message(console, "Restored")
        assert archive.name in message["text"]

        again = restore(server, str(archive))
        assert again.returncode == 0, again.stderr
        flow_runs = next(line for line in again.stdout.splitlines() if line.startswith("flow_run "))
        assert flow_runs.split()[1:3] == ["0", "3"]
    finally:
        console.stop()

    without = restore(server, str(archive), database=False)
    assert without.returncode == 5
    assert "PREFECT_SERVER_DATABASE_CONNECTION_URL is not set" in without.stderr
    named = restore(
        server, str(archive), "--dry-run", "--database-url", server.database_url, database=False
    )
    assert named.returncode == 0, named.stderr
    flow_runs = next(line for line in named.stdout.splitlines() if line.startswith("flow_run "))
    assert flow_runs.split()[1:3] == ["0", "3"]  # all there: restored above
    unknown = restore(server, "--folder", str(tmp_path), "no-such-archive")
    assert unknown.returncode == 1
    assert "no archive 'no-such-archive'" in unknown.stderr
