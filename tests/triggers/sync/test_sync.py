"""Sync against real Prefect servers (SQLite and PostgreSQL): round trips and updates."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from rich.console import Console

from helpers.servers import server_automations
from triggers import OWNER_TAG, Mode, Verb
from triggers.sync import sync_automations
from triggers.sync.report import outcome_json, print_plan

pytestmark = pytest.mark.anyio


EVERYTHING = """\
# yaml-language-server: $schema=../schema.json
kind: block
type: webhook
name: janitor-test-hook
data:
  url: ${HOOK_URL}
  headers: {Content-Type: application/json}
---
kind: block
type: slack-webhook
name: janitor-test-slack
data:
  url: https://hooks.slack.com/services/T000/B000/XXXX
---
name: every-action
description: one of each action type
tags: [team-a]
trigger:
  expect: [prefect.flow-run.Failed, prefect.flow-run.Crashed]
  match: {prefect.resource.id: prefect.flow-run.*}
  match_related: {prefect.resource.role: flow}
  for_each: [prefect.resource.id]
  threshold: 2
  within: 5m
actions:
  - type: do-nothing
  - type: run-deployment
    deployment: janitor-test/nightly
    parameters: {reason: "{{ event.event }}", limit: 5}
    schedule_after: 30s
  - {type: run-deployment, source: inferred}
  - {type: pause-deployment, deployment: janitor-test/nightly}
  - {type: resume-deployment, deployment: janitor-test/nightly}
  - {type: cancel-flow-run}
  - {type: delete-flow-run}
  - {type: suspend-flow-run}
  - {type: resume-flow-run}
  - {type: change-flow-run-state, state: CANCELLED, name: Skipped, message: too old}
  - {type: pause-work-pool, work_pool: janitor-pool}
  - {type: resume-work-pool, work_pool: janitor-pool}
  - {type: pause-work-queue, work_queue: janitor-pool/urgent}
  - {type: resume-work-queue, work_queue: janitor-pool/urgent}
  - {type: pause-automation, automation: composite}
  - {type: resume-automation, source: inferred}
  - type: send-notification
    block: slack-webhook/janitor-test-slack
    subject: "Run {{ event.resource.name }}"
    body: {template: templates/body.j2}
  - type: call-webhook
    block: webhook/janitor-test-hook
    payload: {template: templates/payload.json.j2}
actions_on_resolve:
  - type: call-webhook
    block: webhook/janitor-test-hook
    payload: {text: resolved}
---
name: composite
trigger:
  type: compound
  require: all
  within: 1h
  triggers:
    - expect: janitor.metric.firing
    - type: sequence
      within: 10m
      triggers:
        - {expect: a.started}
        - {expect: a.finished, posture: Proactive, within: 30s}
actions: [{type: do-nothing}]
"""


@pytest.fixture
async def world(api_url: str, deployment: str, automations_dir: Path) -> dict[str, Any]:
    async with PrefectClient(api_url) as client:
        pools = await client.read_work_pools()
        if not any(p.name == "janitor-pool" for p in pools):
            await client.create_work_pool(WorkPoolCreate(name="janitor-pool", type="process"))
            await client.create_work_queue(name="urgent", work_pool_name="janitor-pool")
    (automations_dir / "all.yaml").write_text(EVERYTHING)
    (automations_dir / "templates" / "body.j2").write_text("Flow run {{ event.resource.name }}")
    (automations_dir / "templates" / "payload.json.j2").write_text(
        '{"text": {{ ("failed: " ~ event.event) | tojson }}}'
    )
    return {"api_url": api_url, "env": {"HOOK_URL": "http://127.0.0.1:9/hook"}}


async def test_round_trip_every_trigger_and_action_then_zero_writes(
    world: dict[str, Any], automations_dir: Path
) -> None:
    first = await sync_automations(automations_dir, api_url=world["api_url"], environ=world["env"])
    assert first.error is None
    assert [(s.kind, s.name, s.verb) for s in first.plan.steps] == [
        ("block", "webhook/janitor-test-hook", Verb.CREATE),
        ("block", "slack-webhook/janitor-test-slack", Verb.CREATE),
        ("automation", "every-action", Verb.CREATE),
        ("automation", "composite", Verb.CREATE),
    ]
    stored = await server_automations(world["api_url"])
    every = stored["every-action"]
    assert OWNER_TAG in every["tags"]
    assert "team-a" in every["tags"]
    assert [a["type"] for a in every["actions"]][:3] == [
        "do-nothing",
        "run-deployment",
        "run-deployment",
    ]
    assert len(every["actions"]) == 18
    # pause-automation was resolved to the automation created in the same run
    pause = every["actions"][14]
    assert pause["automation_id"] == stored["composite"]["id"]
    assert stored["composite"]["trigger"]["triggers"][1]["type"] == "sequence"
    updated_before = {name: a["updated"] for name, a in stored.items()}

    second = await sync_automations(automations_dir, api_url=world["api_url"], environ=world["env"])
    assert second.plan.in_sync
    assert all(step.verb == Verb.UNCHANGED for step in second.plan.steps)
    assert second.writes == 0, second.requests
    assert second.applied == []
    after = await server_automations(world["api_url"])
    assert {name: a["updated"] for name, a in after.items()} == updated_before


async def test_update_applies_exactly_the_diff(
    world: dict[str, Any], automations_dir: Path
) -> None:
    await sync_automations(automations_dir, api_url=world["api_url"], environ=world["env"])
    before = await server_automations(world["api_url"])
    spec = automations_dir / "all.yaml"
    spec.write_text(spec.read_text().replace("threshold: 2", "threshold: 7"))

    outcome = await sync_automations(
        automations_dir, api_url=world["api_url"], environ=world["env"]
    )
    assert outcome.error is None
    steps = {s.name: s for s in outcome.plan.steps}
    assert steps["every-action"].verb == Verb.UPDATE
    assert [(c.path, c.old, c.new) for c in steps["every-action"].changes] == [
        ("trigger.threshold", 2, 7)
    ]
    assert steps["composite"].verb == Verb.UNCHANGED
    assert outcome.requests["PUT /automations/" + str(steps["every-action"].server_id)] == 1
    assert outcome.writes == 1

    after = await server_automations(world["api_url"])
    assert after["every-action"]["id"] == before["every-action"]["id"]
    assert after["every-action"]["trigger"]["threshold"] == 7
    for key in ("actions", "actions_on_resolve", "tags", "description", "enabled"):
        assert after["every-action"][key] == before["every-action"][key]


async def test_secret_change_is_shown_masked(world: dict[str, Any], automations_dir: Path) -> None:
    await sync_automations(automations_dir, api_url=world["api_url"], environ=world["env"])
    secret = "http://127.0.0.1:9/hook-with-a-token-xyz"
    outcome = await sync_automations(
        automations_dir, api_url=world["api_url"], environ={"HOOK_URL": secret}, mode=Mode.DRY_RUN
    )
    (block,) = [s for s in outcome.plan.steps if s.name == "webhook/janitor-test-hook"]
    assert block.verb == Verb.UPDATE
    assert [(c.path, c.old, c.new) for c in block.changes] == [("data.url", "********", "********")]
    assert outcome.writes == 0
    buffer = io.StringIO()
    print_plan(Console(file=buffer, width=200), outcome.plan, world["api_url"])
    shown = buffer.getvalue() + json.dumps(outcome_json(outcome, "x"), default=str)
    assert "data.url: (secret changed)" in shown
    assert secret not in shown + repr(outcome.plan)


async def test_read_requests_do_not_grow_with_the_number_of_automations(
    api_url: str, deployment: str, automations_dir: Path
) -> None:
    def bundle(count: int) -> str:
        return "---\n".join(
            f"name: many-{i}\ntrigger: {{expect: a.b}}\n"
            "actions: [{type: run-deployment, deployment: janitor-test/nightly}]\n"
            for i in range(count)
        )

    (automations_dir / "a.yaml").write_text(bundle(1))
    await sync_automations(automations_dir, api_url=api_url, environ={})
    one = await sync_automations(automations_dir, api_url=api_url, environ={})
    (automations_dir / "a.yaml").write_text(bundle(15))
    await sync_automations(automations_dir, api_url=api_url, environ={})
    many = await sync_automations(automations_dir, api_url=api_url, environ={})
    assert many.plan.in_sync
    assert many.writes == 0
    assert many.reads == one.reads, (one.requests, many.requests)


async def test_automations_referring_to_each_other_are_created_in_one_run(
    api_url: str, automations_dir: Path
) -> None:
    def pauses(name: str, other: str) -> str:
        return (
            f"name: {name}\ntrigger: {{expect: {name}.go}}\n"
            f"actions: [{{type: pause-automation, automation: {other}}}]\n"
        )

    # a -> b -> c is a chain, d <-> e a cycle, f pauses itself.
    (automations_dir / "a.yaml").write_text(
        "---\n".join(
            [
                pauses("a", "b"),
                pauses("b", "c"),
                pauses("c", "d"),
                pauses("d", "e"),
                pauses("e", "d"),
                pauses("f", "f"),
            ]
        )
    )
    first = await sync_automations(automations_dir, api_url=api_url, environ={})
    assert first.error is None, first.error
    stored = await server_automations(api_url)
    for name, other in [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("e", "d"), ("f", "f")]:
        assert stored[name]["actions"][0]["automation_id"] == stored[other]["id"], name
        assert stored[name]["enabled"] is True
    again = await sync_automations(automations_dir, api_url=api_url, environ={})
    assert again.plan.in_sync
    assert again.writes == 0
