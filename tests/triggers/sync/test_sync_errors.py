"""Bad declarations name their file and line, and nothing reaches the server."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

from helpers.servers import server_automations, simple
from triggers import SpecError
from triggers.sync import sync_automations

pytestmark = pytest.mark.anyio


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
        await sync_automations(
            automations_dir, api_url=api_url, environ={}, display_root=automations_dir
        )
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
        await sync_automations(
            automations_dir, api_url=api_url, environ={}, display_root=automations_dir
        )
    assert any(str(p).startswith(where) for p in caught.value.problems), caught.value.problems
    assert await server_automations(api_url) == {}
    async with httpx.AsyncClient(base_url=api_url) as client:
        blocks = await client.post(
            "/block_documents/filter", json={"block_documents": {"is_anonymous": {"eq_": False}}}
        )
    assert blocks.json() == []


async def test_parameters_the_deployment_would_refuse_fail_at_sync(
    api_url: str, automations_dir: Path
) -> None:
    """The server validates a run-deployment's parameters only when the automation fires,
    and then refuses the run silently; sync checks them against the same schema first."""
    from prefect.client.orchestration import PrefectClient
    from prefect.utilities.callables import parameter_schema

    from flows.cleanup.flow import database_cleanup

    async with PrefectClient(api_url) as client:
        flow_id = await client.create_flow_from_name("janitor-test-checked")
        await client.create_deployment(
            flow_id=flow_id,
            name="nightly",
            parameter_openapi_schema=parameter_schema(database_cleanup.fn).model_dump(),
        )
    (automations_dir / "a.yaml").write_text(
        textwrap.dedent(
            """\
            name: checked
            trigger: {expect: a.b}
            actions:
              - type: run-deployment
                deployment: janitor-test-checked/nightly
                parameters:
                  config:
                    approval: ${JANITOR_OLD_RUNS_APPROVAL}
                    retention_days: 30
              - type: run-deployment
                deployment: janitor-test-checked/nightly
                parameters:
                  config: {approval: "{{ event.payload.approval }}", retention_days: 7}
            """
        )
    )
    with pytest.raises(SpecError) as caught:
        await sync_automations(
            automations_dir,
            api_url=api_url,
            environ={"JANITOR_OLD_RUNS_APPROVAL": "maybe"},
            display_root=automations_dir,
        )
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith(
        "a.yaml:8: actions[0].parameters.config.approval: 'maybe' is not one of "
        "['human', 'ai', 'none']"
    ), problem
    assert "deployment janitor-test-checked/nightly refuses it" in problem
    assert await server_automations(api_url) == {}

    # A value the schema accepts, and templated values (known only when it fires), pass.
    outcome = await sync_automations(
        automations_dir, api_url=api_url, environ={"JANITOR_OLD_RUNS_APPROVAL": "ai"}
    )
    assert outcome.error is None
    assert set(await server_automations(api_url)) == {"checked"}
