"""Sync publishes metric rules for the probe: idempotent, drift seen, owned only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.servers import call_api, server_automations
from triggers import OWNER_TAG, Mode, Verb
from triggers.sync import sync_automations

pytestmark = pytest.mark.anyio

RULES = """\
name: db large
trigger:
  type: metric
  metric: database.size_bytes
  threshold: {threshold}
  firing_for: 10m
actions: [{{type: do-nothing}}]
actions_on_resolve: [{{type: do-nothing}}]
---
name: pile-up
trigger:
  type: compound
  require: all
  within: 1h
  triggers:
    - {{type: metric, id: old-runs, metric: flow_runs.count, query: {{older_than: 30d}},
       threshold: 10k}}
    - {{type: metric, id: log-rows, metric: database.table_rows, query: {{table: log}},
       threshold: 1M}}
actions: [{{type: do-nothing}}]
"""


async def variables(api_url: str) -> dict[str, dict[str, Any]]:
    body = {"variables": {"name": {"like_": "janitor-metric-rule-"}}}
    found = await call_api(api_url, "POST", "/variables/filter", body)
    return {v["name"]: v for v in found.json()}


def steps(outcome: Any) -> list[tuple[str, str, Verb]]:
    return [(s.kind, s.name, s.verb) for s in outcome.plan.steps]


async def test_rules_are_published_once_and_a_threshold_edit_is_one_update(
    api_url: str, automations_dir: Path
) -> None:
    spec = automations_dir / "rules.yaml"
    spec.write_text(RULES.format(threshold="1 GiB"))
    first = await sync_automations(automations_dir, api_url=api_url)
    assert first.error is None
    assert sorted(steps(first)) == [
        ("automation", "db large", Verb.CREATE),
        ("automation", "db large (resolved)", Verb.CREATE),
        ("automation", "pile-up", Verb.CREATE),
        ("rule", "db-large", Verb.CREATE),
        ("rule", "log-rows", Verb.CREATE),
        ("rule", "old-runs", Verb.CREATE),
    ]
    published = await variables(api_url)
    assert set(published) == {
        "janitor-metric-rule-db-large",
        "janitor-metric-rule-log-rows",
        "janitor-metric-rule-old-runs",
    }
    rule = published["janitor-metric-rule-db-large"]
    assert OWNER_TAG in rule["tags"]
    assert rule["value"]["threshold"] == 1024**3
    assert rule["value"]["firing_for_seconds"] == 600
    automations = await server_automations(api_url)
    trigger = automations["db large"]["trigger"]
    assert trigger["expect"] == ["janitor.metric.firing"]
    assert trigger["match"] == {"prefect.resource.id": "janitor.metric.db-large"}
    assert automations["db large"]["actions_on_resolve"] == []
    assert automations["db large (resolved)"]["trigger"]["expect"] == ["janitor.metric.resolved"]

    again = await sync_automations(automations_dir, api_url=api_url)
    assert again.plan.in_sync
    assert again.writes == 0

    spec.write_text(RULES.format(threshold="2 GiB"))
    edited = await sync_automations(automations_dir, api_url=api_url)
    changed = [(s.kind, s.name, s.verb) for s in edited.plan.steps if s.verb != Verb.UNCHANGED]
    assert changed == [("rule", "db-large", Verb.UPDATE)]
    (update,) = [s for s in edited.plan.steps if s.verb == Verb.UPDATE]
    assert [(c.path, c.old, c.new) for c in update.changes] == [("threshold", 1024**3, 2 * 1024**3)]
    assert edited.writes == 1, "the automation listens to the same resource: untouched"
    assert (await variables(api_url))["janitor-metric-rule-db-large"]["value"]["threshold"] == (
        2 * 1024**3
    )


async def test_check_sees_drift_in_published_rules(api_url: str, automations_dir: Path) -> None:
    (automations_dir / "rules.yaml").write_text(RULES.format(threshold="1 GiB"))
    assert (await sync_automations(automations_dir, api_url=api_url)).error is None
    tampered = (await variables(api_url))["janitor-metric-rule-log-rows"]["value"]
    tampered["threshold"] = 5
    path = "/variables/name/janitor-metric-rule-"
    await call_api(api_url, "PATCH", path + "log-rows", {"value": tampered})
    await call_api(api_url, "DELETE", path + "old-runs")
    check = await sync_automations(automations_dir, api_url=api_url, mode=Mode.CHECK)
    drift = {(s.name, s.verb) for s in check.plan.steps if s.verb != Verb.UNCHANGED}
    assert drift == {("log-rows", Verb.UPDATE), ("old-runs", Verb.CREATE)}
    assert check.writes == 0
    fixed = await sync_automations(automations_dir, api_url=api_url)
    assert fixed.error is None
    assert (await sync_automations(automations_dir, api_url=api_url, mode=Mode.CHECK)).plan.in_sync


async def test_dropped_rules_are_deleted_and_orphans_wait_for_prune(
    api_url: str, automations_dir: Path
) -> None:
    spec = automations_dir / "rules.yaml"
    spec.write_text(RULES.format(threshold="1 GiB"))
    assert (await sync_automations(automations_dir, api_url=api_url)).error is None

    # "pile-up" keeps only its count rule; "db large" leaves the folder.
    text = RULES.format(threshold="1 GiB").split("---\n", 1)[1]
    spec.write_text(
        text.replace(
            "    - {type: metric, id: log-rows, metric: database.table_rows, "
            "query: {table: log},\n       threshold: 1M}\n",
            "    - {expect: prefect.flow-run.Failed}\n",
        )
    )
    outcome = await sync_automations(automations_dir, api_url=api_url)
    assert outcome.error is None
    changed = {(s.kind, s.name, s.verb) for s in outcome.plan.steps if s.verb != Verb.UNCHANGED}
    assert changed == {
        ("automation", "pile-up", Verb.UPDATE),
        ("rule", "log-rows", Verb.DELETE),
        ("automation", "db large", Verb.ORPHAN),
        ("automation", "db large (resolved)", Verb.ORPHAN),
        ("rule", "db-large", Verb.ORPHAN),
    }
    assert set(await variables(api_url)) == {
        "janitor-metric-rule-db-large",
        "janitor-metric-rule-old-runs",
    }
    pruned = await sync_automations(automations_dir, api_url=api_url, prune=True)
    assert pruned.error is None
    assert set(await variables(api_url)) == {"janitor-metric-rule-old-runs"}
    assert set(await server_automations(api_url)) == {"pile-up"}


async def test_a_variable_sync_does_not_own_is_a_conflict_and_nothing_is_written(
    api_url: str, automations_dir: Path
) -> None:
    body = {"name": "janitor-metric-rule-db-large", "value": "theirs"}
    await call_api(api_url, "POST", "/variables/", body)
    (automations_dir / "rules.yaml").write_text(RULES.format(threshold="1 GiB"))
    outcome = await sync_automations(automations_dir, api_url=api_url)
    assert [(s.name, s.verb) for s in outcome.plan.conflicts] == [("db-large", Verb.CONFLICT)]
    assert outcome.writes == 0
    assert (await variables(api_url))["janitor-metric-rule-db-large"]["value"] == "theirs"
    assert not await server_automations(api_url)
