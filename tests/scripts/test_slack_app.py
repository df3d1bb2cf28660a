"""`python scripts/slack_app.py` as an operator starts it: setup errors, health, forgeries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from flows.devstack.processes import free_port, stop_group
from flows.errors import SlackSetupError
from flows.slack.app import OPEN, SlackAppSettings
from helpers import ROOT
from helpers.slack import ALICE, BOB, SECRET, click, form, signed

SCRIPT = ROOT / "scripts" / "slack_app.py"


def test_setup_errors_name_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    complete = {
        "SLACK_SIGNING_SECRET": SECRET,
        "JANITOR_SLACK_APPROVERS": f" {ALICE},{BOB} ,",
        "PREFECT_API_URL": "http://127.0.0.1:4200/api/",
    }
    settings = SlackAppSettings.from_environ(complete)
    assert settings.approvers == {ALICE, BOB}
    assert settings.api_url == "http://127.0.0.1:4200/api"
    assert SECRET not in repr(settings)

    for change, fix in [
        ({"SLACK_SIGNING_SECRET": "  "}, "SLACK_SIGNING_SECRET is not set: copy it from"),
        ({"JANITOR_SLACK_APPROVERS": " , "}, "JANITOR_SLACK_APPROVERS is empty"),
        ({"JANITOR_SLACK_APPROVERS": f"{ALICE},alice"}, "not ['alice']: in Slack, open"),
        ({"PREFECT_API_URL": ""}, "PREFECT_API_URL must be the Prefect server's API URL"),
        ({"PREFECT_API_URL": "127.0.0.1:4200"}, "(it is '127.0.0.1:4200')"),
    ]:
        with pytest.raises(SlackSetupError) as caught:
            SlackAppSettings.from_environ({**complete, **change})
        assert fix in str(caught.value)


def script_env(**values: str) -> dict[str, str]:
    keep = ("SLACK_", "JANITOR_SLACK_", "PREFECT_API_")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(keep)}
    return {**environ, **values}


def test_the_script_refuses_to_start_without_its_secret() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--port", "9"],
        env=script_env(JANITOR_SLACK_APPROVERS=ALICE),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 5, result.stdout + result.stderr
    assert "SLACK_SIGNING_SECRET is not set" in result.stderr
    assert "PREFECT_API_URL" in result.stderr  # every problem at once, not one per attempt
    assert "JANITOR_SLACK_APPROVERS" not in result.stderr


def test_the_script_serves_health_and_refuses_forgeries() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", str(port), "--log-level", "warning"],
        env=script_env(
            SLACK_SIGNING_SECRET=SECRET,
            JANITOR_SLACK_APPROVERS=ALICE,
            PREFECT_API_URL="http://127.0.0.1:9/api",
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0].decode()
            try:
                health = httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the app did not answer /healthz"
                time.sleep(0.1)
        assert (health.status_code, health.text) == (200, "ok")
        body = form(click(OPEN, uuid.uuid4(), "https://hooks.slack.com/actions/x"))
        forged = httpx.post(f"{url}/slack/actions", content=body, headers=signed(body, secret="x"))
        assert forged.status_code == 401
        genuine = httpx.post(f"{url}/slack/actions", content=body, headers=signed(body))
        assert (genuine.status_code, genuine.text) == (200, "nothing to do")
    finally:
        stop_group(process, signal.SIGTERM, 10)
    output = process.communicate()[0].decode()
    # uvicorn shuts down gracefully, then re-raises the signal so the exit says why.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert f"Slack approvals on http://127.0.0.1:{port}/slack/actions" in output
    assert "refused (401): bad signature" in output
    assert SECRET not in output
