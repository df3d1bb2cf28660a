"""End to end on a real server: a metric breach starts exactly one cleanup run, at once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cleanup_support import against
from support import metric_filter, wait_for_events

from flows.cleanup import database_cleanup
from flows.localserver import LocalServer
from flows.probe import metric_probe
from flows.seed import RunSpec, make_history
from triggers import sync

pytestmark = pytest.mark.anyio

AUTOMATION = """\
name: cleanup-{flow}
trigger:
  type: metric
  metric: flow_runs.count
  query: {{flows: [{flow}], states: [COMPLETED], older_than: 30d}}
  operator: ">"
  threshold: 2
actions:
  - type: run-deployment
    deployment: database-cleanup/database-cleanup
    parameters:
      config: {{approval: human, flows: [{flow}]}}
"""


async def cleanup_runs(api_url: str, deployment_id: str, since: datetime) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        response = await client.post(
            "/flow_runs/filter",
            json={
                "flow_runs": {"deployment_id": {"any_": [deployment_id]}},
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": 50,
            },
        )
        response.raise_for_status()
    return [r for r in response.json() if datetime.fromisoformat(r["created"]) >= since]


async def test_seeded_history_over_a_threshold_starts_one_cleanup_run(
    server: LocalServer,
    api_url: str,
    automations_dir: Path,
    flow_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = datetime.now(UTC)
    await make_history(
        api_url, server.database_url, [RunSpec(flow_name, ago=timedelta(days=45))] * 3
    )
    async with against(server, "database", monkeypatch):
        deployment = await database_cleanup.to_deployment(name="database-cleanup")  # type: ignore[misc]
        deployment_id = str(await deployment.apply())
        (automations_dir / "cleanup.yaml").write_text(AUTOMATION.format(flow=flow_name))
        outcome = await sync(automations_dir, api_url=api_url, environ={})
        assert outcome.error is None, outcome.error

        reports = [await metric_probe() for _ in range(3)]
    assert [len(r.fired) for r in reports] == [1, 0, 0]

    deadline = time.monotonic() + 30
    runs: list[dict[str, Any]] = []
    while not runs and time.monotonic() < deadline:
        runs = await cleanup_runs(api_url, deployment_id, started)
        await asyncio.sleep(0.25)
    await asyncio.sleep(5)  # a second run, if one were coming, would be here by now
    runs = await cleanup_runs(api_url, deployment_id, started)
    assert len(runs) == 1, "one breach episode, one cleanup"
    (run,) = runs
    assert run["parameters"]["config"]["flows"] == [flow_name]

    (event,) = await wait_for_events(
        api_url,
        metric_filter(f"janitor.metric.cleanup-{flow_name}", "firing"),
        lambda events: len(events) >= 1,
    )
    delay = datetime.fromisoformat(run["created"]) - datetime.fromisoformat(event["occurred"])
    print(f"firing event to cleanup run created: {delay.total_seconds():.2f} s")  # -s shows it
    assert timedelta(0) <= delay < timedelta(seconds=5), delay
