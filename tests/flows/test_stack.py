"""The local stack: server up, automations synced, Slack printed, all stopped again."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from flows.localserver import free_port
from flows.slackconsole import message_text
from flows.stack import Stack


def test_message_text_reads_block_kit() -> None:
    text = message_text(
        {
            "text": "fallback",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "*hello*"}},
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Open"},
                            "url": "u",
                        }
                    ],
                },
            ],
        }
    )
    assert text == "*hello*\n[Open] u"


def test_stack_syncs_and_prints_slack_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    printed: list[str] = []
    stack = Stack(tmp_path / "state", port=free_port(), say=printed.append)
    try:
        outcome = stack.start()
        assert outcome.error is None
        assert not outcome.plan.conflicts
        assert stack.server is not None
        assert stack.slack is not None
        api = stack.server.api_url
        names = {a["name"] for a in httpx.post(f"{api}/automations/filter", json={}).json()}
        assert "janitor-notify-crashed-runs" in names
        assert "janitor-notify-approval-requested" in names
        assert (tmp_path / "state" / "prefect.db").exists(), "SQLite in the project-local folder"
        assert "janitor-cleanup-when-database-is-large" in names
        rules = httpx.post(
            f"{api}/variables/filter",
            json={"variables": {"name": {"like_": "janitor-metric-rule-"}}},
        ).json()
        assert {r["name"] for r in rules} == {
            "janitor-metric-rule-janitor-cleanup-when-database-is-large",
            "janitor-metric-rule-old-finished-runs",
            "janitor-metric-rule-log-rows",
        }
        probe = httpx.get(f"{api}/deployments/name/metric-probe/metric-probe").json()
        assert probe["schedules"][0]["schedule"]["interval"] == 60
        # The served probe runs on its schedule, and reaches the server's database.
        deadline = time.monotonic() + 90
        finished: list[dict[str, object]] = []
        while time.monotonic() < deadline and not finished:
            finished = httpx.post(
                f"{api}/flow_runs/filter",
                json={
                    "deployments": {"id": {"any_": [probe["id"]]}},
                    "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
                },
            ).json()
            time.sleep(1)
        assert finished, "the served metric probe did not complete a run"
        measured: list[dict[str, object]] = []
        while time.monotonic() < deadline and not measured:
            measured = httpx.post(
                f"{api}/events/filter",
                json={
                    "filter": {
                        "event": {"name": ["janitor.metric.measured"]},
                        "resource": {"id": ["janitor.measurement.database.size_bytes"]},
                    }
                },
            ).json()["events"]
            time.sleep(1)
        assert measured, "the served probe could not read the server's database"

        run_id = uuid.uuid4()
        crashed = {
            "id": str(uuid.uuid4()),
            "occurred": datetime.now(UTC).isoformat(),
            "event": "prefect.flow-run.Crashed",
            "resource": {
                "prefect.resource.id": f"prefect.flow-run.{run_id}",
                "prefect.resource.name": "tidy-<otter>",
                "prefect.state-message": "exit code 137",
            },
            "related": [],
            "payload": {},
        }
        nothing = {
            **crashed,
            "id": str(uuid.uuid4()),
            "event": "janitor.cleanup.nothing-to-do",
            "resource": {
                "prefect.resource.id": f"janitor.cleanup.{run_id}",
                "prefect.resource.name": "tidy-otter",
            },
            "payload": {"cutoff": "2026-10-23T14:00:00+00:00", "protected": 0},
        }
        firing = {
            **crashed,
            "id": str(uuid.uuid4()),
            "event": "janitor.metric.firing",
            "resource": {"prefect.resource.id": "janitor.metric.old-finished-runs"},
            "payload": {
                "metric": "flow_runs.count",
                "operator": ">",
                "value_text": "52,000",
                "threshold_text": "10,000",
                "since": "2026-11-22T08:50:00+00:00",
                "condition": "flow_runs.count > 10,000",
                "rule": "old-finished-runs",
            },
        }
        # Automations reach the triggers service a moment after they are created.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(stack.slack.received) < 3:
            httpx.post(f"{api}/events", json=[crashed, nothing, firing]).raise_for_status()
            time.sleep(2)
        texts = [message["text"] for message in stack.slack.received]
        assert "Flow run tidy-&lt;otter&gt; crashed" in texts  # Slack parses the fallback
        assert any(text.startswith("Nothing to clean: no flow run in scope") for text in texts)
        assert any("Flow run *tidy-<otter>* crashed" in line for line in printed)
        assert any("Nothing to clean" in line for line in printed)
        assert any("flow_runs.count is 52,000 (&gt; 10,000)" in text for text in texts)
        assert any("== :rotating_light: Metric over its threshold" in line for line in printed)
    finally:
        stack.stop()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)
