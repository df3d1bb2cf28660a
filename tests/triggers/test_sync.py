"""Sync against real Prefect servers (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from rich.console import Console

from triggers import OWNER_TAG, Mode, SpecError, Verb, sync
from triggers.report import outcome_json, print_plan

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


async def server_automations(api_url: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post("/automations/filter", json={})
        return {a["name"]: a for a in response.json()}


async def test_round_trip_every_trigger_and_action_then_zero_writes(
    world: dict[str, Any], automations_dir: Path
) -> None:
    first = await sync(automations_dir, api_url=world["api_url"], environ=world["env"])
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

    second = await sync(automations_dir, api_url=world["api_url"], environ=world["env"])
    assert second.plan.in_sync
    assert all(step.verb == Verb.UNCHANGED for step in second.plan.steps)
    assert second.writes == 0, second.requests
    assert second.applied == []
    after = await server_automations(world["api_url"])
    assert {name: a["updated"] for name, a in after.items()} == updated_before


async def test_update_applies_exactly_the_diff(
    world: dict[str, Any], automations_dir: Path
) -> None:
    await sync(automations_dir, api_url=world["api_url"], environ=world["env"])
    before = await server_automations(world["api_url"])
    spec = automations_dir / "all.yaml"
    spec.write_text(spec.read_text().replace("threshold: 2", "threshold: 7"))

    outcome = await sync(automations_dir, api_url=world["api_url"], environ=world["env"])
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
    await sync(automations_dir, api_url=world["api_url"], environ=world["env"])
    secret = "http://127.0.0.1:9/hook-with-a-token-xyz"
    outcome = await sync(
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


def simple(name: str, threshold: int = 1) -> str:
    return textwrap.dedent(
        f"""\
        name: {name}
        trigger: {{expect: prefect.flow-run.Failed, threshold: {threshold}}}
        actions: [{{type: do-nothing}}]
        """
    )


async def create_raw(api_url: str, name: str, tags: list[str]) -> str:
    body = {
        "name": name,
        "tags": tags,
        "trigger": {"type": "event", "expect": ["x.y"], "posture": "Reactive"},
        "actions": [{"type": "do-nothing"}],
    }
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post("/automations/", json=body)
        response.raise_for_status()
        return str(response.json()["id"])


async def test_prune_deletes_only_owned(api_url: str, automations_dir: Path) -> None:
    (automations_dir / "keep.yaml").write_text(simple("keep"))
    (automations_dir / "gone.yaml").write_text(simple("gone"))
    await sync(automations_dir, api_url=api_url, environ={})
    await create_raw(api_url, "someone-elses", ["team-b"])
    (automations_dir / "gone.yaml").unlink()

    report = await sync(automations_dir, api_url=api_url, environ={})
    assert {(s.name, s.verb) for s in report.plan.steps} == {
        ("keep", Verb.UNCHANGED),
        ("gone", Verb.ORPHAN),
    }
    assert report.writes == 0
    assert set(await server_automations(api_url)) == {"keep", "gone", "someone-elses"}

    pruned = await sync(automations_dir, api_url=api_url, environ={}, prune=True)
    assert {(s.name, s.verb) for s in pruned.plan.steps} == {
        ("keep", Verb.UNCHANGED),
        ("gone", Verb.DELETE),
    }
    assert set(await server_automations(api_url)) == {"keep", "someone-elses"}


async def test_unowned_clash_is_refused_and_left_alone(api_url: str, automations_dir: Path) -> None:
    theirs = await create_raw(api_url, "shared-name", ["team-b"])
    before = (await server_automations(api_url))["shared-name"]
    (automations_dir / "a.yaml").write_text(simple("shared-name") + "---\n" + simple("other"))

    outcome = await sync(automations_dir, api_url=api_url, environ={})
    (conflict,) = outcome.plan.conflicts
    assert conflict.name == "shared-name"
    assert str(conflict.server_id) == theirs
    assert OWNER_TAG in conflict.note
    assert outcome.writes == 0, "a conflict stops the whole apply"
    assert await server_automations(api_url) == {"shared-name": before}


async def test_unknown_names_fail_before_any_write(
    api_url: str, deployment: str, automations_dir: Path
) -> None:
    (automations_dir / "a.yaml").write_text(
        textwrap.dedent(
            """\
            name: bad-refs
            trigger: {expect: a.b}
            actions:
              - type: run-deployment
                deployment: janitor-test/nightli
              - type: call-webhook
                block: webhook/nowhere
                payload: hi
              - type: pause-automation
                automation: no-such-automation
            """
        )
    )
    (automations_dir / "b.yaml").write_text(simple("innocent"))
    with pytest.raises(SpecError) as caught:
        await sync(automations_dir, api_url=api_url, environ={}, display_root=automations_dir)
    problems = [str(p) for p in caught.value.problems]
    assert problems[0].startswith(
        "a.yaml:5: actions[0].deployment: unknown deployment 'janitor-test/nightli'"
    )
    assert "closest existing: janitor-test/nightly" in problems[0]
    assert problems[1].startswith("a.yaml:7: actions[1].block: unknown block 'webhook/nowhere'")
    assert problems[2].startswith(
        "a.yaml:10: actions[2].automation: unknown automation 'no-such-automation'"
    )
    assert await server_automations(api_url) == {}


async def test_check_mode_reports_drift_without_writing(
    api_url: str, automations_dir: Path
) -> None:
    (automations_dir / "a.yaml").write_text(simple("checked"))
    drift = await sync(automations_dir, api_url=api_url, environ={}, mode=Mode.CHECK)
    assert not drift.plan.in_sync
    assert drift.writes == 0
    await sync(automations_dir, api_url=api_url, environ={})
    clean = await sync(automations_dir, api_url=api_url, environ={}, mode=Mode.CHECK)
    assert clean.plan.in_sync


async def test_only_limits_the_scope(api_url: str, automations_dir: Path) -> None:
    (automations_dir / "a.yaml").write_text(simple("one") + "---\n" + simple("two"))
    outcome = await sync(automations_dir, api_url=api_url, environ={}, only={"two"})
    assert [(s.name, s.verb) for s in outcome.plan.steps] == [("two", Verb.CREATE)]
    assert set(await server_automations(api_url)) == {"two"}


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
    await sync(automations_dir, api_url=api_url, environ={})
    one = await sync(automations_dir, api_url=api_url, environ={})
    (automations_dir / "a.yaml").write_text(bundle(15))
    await sync(automations_dir, api_url=api_url, environ={})
    many = await sync(automations_dir, api_url=api_url, environ={})
    assert many.plan.in_sync
    assert many.writes == 0
    assert many.reads == one.reads, (one.requests, many.requests)


BAD_INPUTS = {
    "yaml-syntax": ("name: x\ntrigger: [\n", "a.yaml:"),
    "unknown-field": ("name: x\ntrigger: {expect: a, expct: b}\nactions: []\n", "a.yaml:2:"),
    "wrong-type": ("name: x\ntrigger: {expect: a}\nenabled: maybe\nactions: []\n", "a.yaml:3:"),
    "unknown-deployment": (
        "name: x\ntrigger: {expect: a}\nactions:\n"
        "  - {type: run-deployment, deployment: nope/nope}\n",
        "a.yaml:4:",
    ),
    "unknown-block": (
        "name: x\ntrigger: {expect: a}\nactions:\n"
        "  - {type: call-webhook, block: webhook/nope, payload: hi}\n",
        "a.yaml:4:",
    ),
    "unknown-automation": (
        "name: x\ntrigger: {expect: a}\nactions:\n"
        "  - {type: resume-automation, automation: nope}\n",
        "a.yaml:4:",
    ),
    "missing-env": ("name: ${NOT_SET_ANYWHERE}\ntrigger: {expect: a}\nactions: []\n", "a.yaml:1:"),
    "template-syntax": (
        "name: x\ntrigger: {expect: a}\nactions:\n"
        "  - {type: call-webhook, block: webhook/h, payload: '{{ oops'}\n",
        "a.yaml:4:",
    ),
    "invalid-json-payload": (
        "name: x\ntrigger: {expect: a}\nactions:\n"
        "  - {type: call-webhook, block: webhook/h, payload: '{\"a\": {{ event.id }}'}\n",
        "a.yaml:4:",
    ),
    "duplicate-name": (
        "name: x\ntrigger: {expect: a}\nactions: []\n---\nname: x\ntrigger: {expect: a}\n"
        "actions: []\n",
        "a.yaml:5:",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
async def test_bad_input_names_file_and_line_and_writes_nothing(
    case: str, api_url: str, automations_dir: Path
) -> None:
    text, where = BAD_INPUTS[case]
    (automations_dir / "a.yaml").write_text(text)
    (automations_dir / "good.yaml").write_text(
        simple("good-one")
        + "---\nkind: block\ntype: webhook\nname: h\ndata: {url: 'http://127.0.0.1:9/'}\n"
    )
    with pytest.raises(SpecError) as caught:
        await sync(automations_dir, api_url=api_url, environ={}, display_root=automations_dir)
    assert any(str(p).startswith(where) for p in caught.value.problems), caught.value.problems
    assert await server_automations(api_url) == {}
    async with httpx.AsyncClient(base_url=api_url) as client:
        blocks = await client.post(
            "/block_documents/filter", json={"block_documents": {"is_anonymous": {"eq_": False}}}
        )
    assert blocks.json() == []


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
    first = await sync(automations_dir, api_url=api_url, environ={})
    assert first.error is None, first.error
    stored = await server_automations(api_url)
    for name, other in [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("e", "d"), ("f", "f")]:
        assert stored[name]["actions"][0]["automation_id"] == stored[other]["id"], name
        assert stored[name]["enabled"] is True
    again = await sync(automations_dir, api_url=api_url, environ={})
    assert again.plan.in_sync
    assert again.writes == 0
