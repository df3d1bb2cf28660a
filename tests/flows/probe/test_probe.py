"""The metric probe against real servers: firing once per episode, resolved, state on the server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history
from flows.probe.flow import PROBE_LIMIT, ProbeReport, metric_probe
from helpers.cleanup import against, release_slot
from helpers.proxy import Rule, fault_proxy
from helpers.servers import metric_filter, wait_for_events
from triggers.sync import sync_automations

pytestmark = pytest.mark.anyio

COUNT_RULE = """\
name: {name}
trigger:
  type: metric
  metric: flow_runs.count
  query: {{flows: [{flow}], older_than: 30d}}
  operator: ">"
  threshold: {threshold}
  firing_for: {firing_for}
actions: [{{type: do-nothing}}]
"""

SIZE_RULE = """\
name: {name}
trigger: {{type: metric, metric: database.size_bytes, threshold: 1 KiB}}
actions: [{{type: do-nothing}}]
"""


async def publish(api_url: str, folder: Path, text: str, *, prune: bool = False) -> None:
    (folder / "rules.yaml").write_text(text)
    outcome = await sync_automations(folder, api_url=api_url, environ={}, prune=prune)
    assert outcome.error is None, outcome.error


async def transitions(api_url: str, rule_id: str, count: int) -> list[str]:
    """The firing/resolved events of one rule, once ``count`` have been persisted."""
    found = await wait_for_events(
        api_url,
        metric_filter(f"janitor.metric.{rule_id}", "firing", "resolved"),
        lambda events: len(events) >= count,
    )
    return [event["event"].rsplit(".", 1)[1] for event in found]


async def state_of(api_url: str, rule_id: str) -> Any:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.get(f"/variables/name/janitor-metric-state-{rule_id}")
        return response.json()["value"] if response.status_code == 200 else None


async def test_one_firing_per_episode_then_resolved_with_state_on_the_server(
    server: LocalServer,
    api_url: str,
    automations_dir: Path,
    flow_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release_slot(api_url, PROBE_LIMIT)
    old = timedelta(days=40)
    await make_history(api_url, server.database_url, [RunSpec(flow_name, ago=old)] * 3)
    rule = f"probe-{flow_name}"
    rules = (
        COUNT_RULE.format(name=rule, flow=flow_name, threshold=2, firing_for="3s")
        + "---\n"
        + SIZE_RULE.format(name=f"size-{flow_name}")
    )
    await publish(api_url, automations_dir, rules)

    reports: list[ProbeReport] = []
    async with against(server, "database", monkeypatch):
        reports.append(await metric_probe())
        breach = await state_of(api_url, rule)
        assert breach["breach_since"] is not None, "the breach's start is kept on the server"
        assert not breach["firing"]
        await asyncio.sleep(3.5)  # firing_for; each probe run reads the state afresh
        for _ in range(3):
            reports.append(await metric_probe())
    assert [r.fired for r in reports] == [[f"size-{flow_name}"], [rule], [], []]
    assert reports[1].state_writes == 1, "a quiet probe run writes nothing"
    assert [r.state_writes for r in reports[2:]] == [0, 0]
    measured = {m.metric: m for m in reports[0].measurements}
    assert measured["flow_runs.count"].value == 3
    assert measured["database.size_bytes"].status == "ok"

    # The breach ends: the threshold moves above the count; the same rule resolves.
    # The size rule's automation is pruned, and the probe forgets its state.
    await publish(
        api_url,
        automations_dir,
        COUNT_RULE.format(name=rule, flow=flow_name, threshold=5, firing_for="3s"),
        prune=True,
    )
    async with against(server, "database", monkeypatch):
        resolved = await metric_probe()
        quiet = await metric_probe()
    assert resolved.resolved == [rule]
    assert quiet.resolved == []
    assert await transitions(api_url, rule, 2) == ["firing", "resolved"]
    assert await state_of(api_url, f"size-{flow_name}") is None, "unpublished: forgotten"


async def test_firing_events_carry_what_a_message_needs(
    server: LocalServer, api_url: str, automations_dir: Path, flow_name: str
) -> None:
    release_slot(api_url, PROBE_LIMIT)
    await make_history(api_url, server.database_url, [RunSpec(flow_name, ago=timedelta(days=31))])
    rule = f"payload-{flow_name}"
    await publish(
        api_url,
        automations_dir,
        COUNT_RULE.format(name=rule, flow=flow_name, threshold=0, firing_for=0),
    )
    async with against(server, "api", pytest.MonkeyPatch()):
        report = await metric_probe()
    assert report.fired == [rule]
    (event,) = await wait_for_events(
        api_url,
        metric_filter(f"janitor.metric.{rule}", "firing"),
        lambda events: len(events) >= 1,
    )
    payload = event["payload"]
    assert payload["metric"] == "flow_runs.count"
    assert payload["value"] == 1
    assert payload["threshold"] == 0
    assert payload["operator"] == ">"
    assert payload["since"]
    assert payload["automation"] == rule
    assert payload["condition"] == "flow_runs.count > 0"
    assert event["resource"]["prefect.resource.name"] == rule
    assert any(r["prefect.resource.role"] == "flow-run" for r in event["related"])


async def test_an_unavailable_metric_neither_fires_nor_resolves(
    server: LocalServer, api_url: str, automations_dir: Path, flow_name: str
) -> None:
    release_slot(api_url, PROBE_LIMIT)
    rule = f"size-{flow_name}"
    await publish(api_url, automations_dir, SIZE_RULE.format(name=rule))
    monkeypatch = pytest.MonkeyPatch()
    try:
        # Without the server's database URL, the size cannot be had.
        async with against(server, "api", monkeypatch):
            reports = [await metric_probe() for _ in range(2)]
    finally:
        monkeypatch.undo()
    for report in reports:
        (measurement,) = report.measurements
        assert measurement.status == "unavailable"
        assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" in measurement.reason
        assert report.fired == []
    assert await state_of(api_url, rule) is None
    unavailable = await wait_for_events(
        api_url,
        metric_filter("janitor.measurement.database.size_bytes", "unavailable"),
        lambda events: len(events) >= 2,
    )
    assert len(unavailable) >= 2


async def test_probes_at_once_agree_on_one_firing(
    server: LocalServer, api_url: str, automations_dir: Path, flow_name: str
) -> None:
    release_slot(api_url, PROBE_LIMIT)
    await make_history(api_url, server.database_url, [RunSpec(flow_name, ago=timedelta(days=40))])
    rule = f"race-{flow_name}"
    await publish(
        api_url,
        automations_dir,
        COUNT_RULE.format(name=rule, flow=flow_name, threshold=0, firing_for=0),
    )
    monkeypatch = pytest.MonkeyPatch()
    try:
        async with against(server, "api", monkeypatch):
            reports = await asyncio.gather(*(metric_probe() for _ in range(3)))
    finally:
        monkeypatch.undo()
    assert sum(len(r.fired) for r in reports) == 1
    assert await transitions(api_url, rule, 1) == ["firing"]


async def test_a_broken_or_untagged_state_variable_is_taken_over_not_fatal(
    server: LocalServer, api_url: str, automations_dir: Path, flow_name: str
) -> None:
    """A state variable someone edited (no tags, a value that is no state) must not stop
    every probe run: the probe takes it over and the rule fires as it should."""
    release_slot(api_url, PROBE_LIMIT)
    await make_history(api_url, server.database_url, [RunSpec(flow_name, ago=timedelta(days=40))])
    rule = f"broken-{flow_name}"
    await publish(
        api_url,
        automations_dir,
        COUNT_RULE.format(name=rule, flow=flow_name, threshold=0, firing_for=0),
    )
    async with httpx.AsyncClient(base_url=api_url) as client:
        created = await client.post(
            "/variables/",
            json={"name": f"janitor-metric-state-{rule}", "value": {"not": "a state"}},
        )
        created.raise_for_status()
    async with against(server, "api", pytest.MonkeyPatch()):
        report = await metric_probe()
    assert report.fired == [rule]
    assert report.problems == []
    state = await state_of(api_url, rule)
    assert state["firing"] is True
    async with httpx.AsyncClient(base_url=api_url) as client:
        variable = (await client.get(f"/variables/name/janitor-metric-state-{rule}")).json()
    assert "managed-by:prefect-janitor" in variable["tags"]


async def test_a_transition_is_announced_only_once_its_state_is_saved(
    server: LocalServer, api_url: str, automations_dir: Path, flow_name: str
) -> None:
    """The server refuses the state write: nothing is announced, so the next run (which
    can save) fires once, instead of a firing now and again then."""
    release_slot(api_url, PROBE_LIMIT)
    await make_history(api_url, server.database_url, [RunSpec(flow_name, ago=timedelta(days=40))])
    rule = f"unsaved-{flow_name}"
    await publish(
        api_url,
        automations_dir,
        COUNT_RULE.format(name=rule, flow=flow_name, threshold=0, firing_for=0),
    )
    with fault_proxy(api_url) as proxy:
        proxy.add(Rule(r"^(POST /variables/$|PATCH /variables/name/janitor-metric-state)", "fail"))
        async with against(server, "api", pytest.MonkeyPatch()):
            with temporary_settings({PREFECT_API_URL: proxy.api_url}):
                refused = await metric_probe()
    async with against(server, "api", pytest.MonkeyPatch()):
        saved = await metric_probe()
    assert refused.fired == []
    assert any(rule in problem and "could not be saved" in problem for problem in refused.problems)
    assert saved.fired == [rule]
    await asyncio.sleep(2)  # time for a wrongly emitted event to land
    assert await transitions(api_url, rule, 1) == ["firing"]
