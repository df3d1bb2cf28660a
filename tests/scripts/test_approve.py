"""`python scripts/approve.py` as a person at a terminal runs it: list, refuse, fail clearly.

Approving a real waiting cleanup with it is tested end to end by the demo
(tests/scripts/test_stack.py); the checks it shares with the Slack app by
tests/flows/slack/test_app.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx

from flows.devstack.processes import free_port
from flows.devstack.server import LocalServer, request
from helpers import ROOT


def approve(*args: str, api_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "approve.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_lists_refuses_and_says_why(sqlite_server: LocalServer) -> None:
    api = sqlite_server.api_url
    listed = approve(api_url=api)
    assert listed.returncode == 0, listed.stderr
    assert "no cleanup is waiting for approval" in listed.stdout

    unknown = uuid.uuid4()
    refused = approve(str(unknown), api_url=api)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"refused: flow run {unknown} does not exist"

    with httpx.Client(base_url=api, timeout=30) as client:
        flow = request(client, "POST", "/flows/", {"name": "not-a-cleanup"}).json()
        run = request(client, "POST", "/flow_runs/", {"flow_id": flow["id"]}).json()
    other = approve(run["id"], "--reject", api_url=api)
    assert other.returncode == 1
    assert "belongs to 'not-a-cleanup', not database-cleanup" in other.stderr


def test_an_unreachable_server_is_exit_4() -> None:
    down = approve(api_url=f"http://127.0.0.1:{free_port()}/api")
    assert down.returncode == 4
    assert down.stderr.startswith("error: cannot reach the Prefect API"), down.stderr
