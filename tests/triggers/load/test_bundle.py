"""Loading: valid specs compile to Prefect's models; every bad input names file:line."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

from prefect.events.schemas.automations import AutomationCore

from helpers.servers import problems_for
from triggers.load.bundle import load_bundle
from triggers.spec.trigger import EventTriggerSpec

VALID = """\
name: notify-crashes
description: Tell Slack about crashed runs
trigger:
  expect: prefect.flow-run.Crashed
  match:
    prefect.resource.id: prefect.flow-run.*
  within: 10m
actions:
  - type: call-webhook
    block: webhook/slack
    payload:
      template: templates/crashed.json.j2
"""


def test_valid_spec_compiles_to_prefect_models(automations_dir: Path) -> None:
    (automations_dir / "a.yaml").write_text(VALID)
    (automations_dir / "templates" / "crashed.json.j2").write_text(
        '{"text": {{ ("Crashed: " ~ event.resource.name) | tojson }}}'
    )
    bundle = load_bundle(automations_dir, environ={})
    (declared,) = bundle.automations
    assert isinstance(declared.spec.trigger, EventTriggerSpec)
    assert declared.spec.trigger.within == timedelta(minutes=10)
    assert declared.spec.all_actions()


def test_prefect_cli_yaml_loads_unchanged(automations_dir: Path) -> None:
    """The shape `prefect automation inspect --yaml` prints, with ids, loads as is."""
    (automations_dir / "cli.yaml").write_text(
        textwrap.dedent(
            """\
            automations:
              - name: from-the-cli
                description: ''
                enabled: true
                tags: []
                trigger:
                  type: event
                  match: {prefect.resource.id: prefect.flow-run.*}
                  match_related: {}
                  after: []
                  expect: [prefect.flow-run.Failed]
                  for_each: [prefect.resource.id]
                  posture: Reactive
                  threshold: 1
                  within: 0.0
                actions:
                  - type: cancel-flow-run
                  - type: run-deployment
                    source: selected
                    deployment_id: 5c8ff7c1-b9ef-4a4f-9c0e-3e0c5f8a1c11
                    parameters: null
                    job_variables: null
                    schedule_after: 0.0
                actions_on_trigger: []
                actions_on_resolve: []
                owner_resource: null
            """
        )
    )
    bundle = load_bundle(automations_dir, environ={})
    (declared,) = bundle.automations

    class NoNames:
        def __getattr__(self, name: str) -> object:
            raise AssertionError("raw ids need no resolution")

    core = declared.spec.compile(NoNames())  # type: ignore[arg-type]
    assert isinstance(core, AutomationCore)
    assert str(core.actions[1].deployment_id).startswith("5c8ff7c1")  # type: ignore[union-attr]


def test_yaml_syntax_error(automations_dir: Path) -> None:
    (problem,) = problems_for(automations_dir, {"a.yaml": "name: x\ntrigger: [\n"})
    assert problem.startswith("a.yaml:")
    assert "YAML syntax error" in problem


def test_unknown_field_with_suggestion(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {"a.yaml": "name: x\ntrigger:\n  expct: [a.b]\nactions: [{type: do-nothing}]\n"},
    )
    assert problem.startswith("a.yaml:3: trigger.expct: unknown field 'expct'")
    assert "did you mean 'expect'" in problem


def test_wrong_type(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {"a.yaml": "name: x\ntrigger:\n  expect: [a]\n  threshold: lots\nactions: []\n"},
    )
    assert problem.startswith("a.yaml:4: trigger.threshold:")
    assert "integer" in problem
    assert "'lots'" in problem


def test_unknown_action_type_suggests(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {"a.yaml": "name: x\ntrigger: {expect: a}\nactions:\n  - type: run-deploymnt\n"},
    )
    assert problem.startswith("a.yaml:4: actions[0]: unknown type 'run-deploymnt'")
    assert "'run-deployment'" in problem


def test_reference_form_is_checked(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "a.yaml": "name: x\ntrigger: {expect: a}\nactions:\n"
            "  - type: run-deployment\n    deployment: just-a-name\n"
        },
    )
    assert problem.startswith("a.yaml:5: actions[0].deployment:")
    assert "flow-name/deployment-name" in problem


def test_missing_environment_variable(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {"slack.yaml": "kind: block\ntype: webhook\nname: slack\ndata:\n  url: ${SLACK_URL_X}\n"},
    )
    assert problem.startswith("slack.yaml:5: environment variable SLACK_URL_X is not set")


def test_unknown_block_field(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {"slack.yaml": "kind: block\ntype: webhook\nname: slack\ndata:\n  ur: http://x\n"},
    )
    assert problem.startswith("slack.yaml:5: unknown field 'ur' for block type webhook")
    assert "'url'" in problem


def test_template_syntax_error_names_the_template_line(automations_dir: Path) -> None:
    problems = problems_for(
        automations_dir,
        {
            "a.yaml": VALID,
            "templates/crashed.json.j2": '{\n  "text": {{ event.event | tojson }\n}',
        },
    )
    (problem,) = problems
    assert problem.startswith("templates/crashed.json.j2:2: template syntax error")
    assert "used at a.yaml:12" in problem


def test_payload_that_renders_invalid_json(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "a.yaml": VALID,
            "templates/crashed.json.j2": '{"text": "{{ event.event }}" "oops"}',
        },
    )
    assert problem.startswith("templates/crashed.json.j2: payload does not render valid JSON")
    assert "prefect.flow-run.Crashed" in problem
    assert "tojson" in problem


def test_missing_template_file(automations_dir: Path) -> None:
    (problem,) = problems_for(automations_dir, {"a.yaml": VALID, "templates/crashd.json.j2": "{}"})
    assert problem.startswith("a.yaml:12: actions[0].payload: cannot read template")
    assert "templates/crashd.json.j2" in problem


def test_inline_payload_json_checked(automations_dir: Path) -> None:
    text = VALID.replace(
        "    payload:\n      template: templates/crashed.json.j2\n",
        "    payload: '{\"text\": {{ event.event }} }'\n",
    )
    (problem,) = problems_for(automations_dir, {"a.yaml": text})
    assert problem.startswith("a.yaml:11: payload does not render valid JSON")


def test_duplicate_names_across_files(automations_dir: Path) -> None:
    body = "name: same\ntrigger: {expect: a}\nactions: [{type: do-nothing}]\n"
    (problem,) = problems_for(automations_dir, {"a.yaml": body, "b.yaml": "\n" + body})
    assert problem.startswith("b.yaml:2: automation 'same' is declared twice (first at a.yaml:1)")


def test_all_problems_reported_at_once(automations_dir: Path) -> None:
    problems = problems_for(
        automations_dir,
        {
            "a.yaml": "name: a\ntrigger: {expect: a, posture: Sideways}\nactions: []\n"
            "---\nname: b\ntrigger: {type: metrc}\nactions: []\n",
            "b.yaml": "kind: blok\n",
        },
    )
    assert len(problems) == 3
    assert any("a.yaml:6: trigger: unknown trigger type 'metrc'" in p for p in problems)
    assert any("b.yaml:1: unknown kind 'blok'" in p for p in problems)


def test_compound_require_must_fit(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "a.yaml": "name: a\ntrigger:\n  require: 3\n  triggers: [{expect: a}, {expect: b}]\n"
            "actions: []\n"
        },
    )
    assert problem.startswith("a.yaml:2: trigger: require is 3 but there are 2 triggers")


def test_compound_require_that_is_no_number_is_reported_at_its_own_line(
    automations_dir: Path,
) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "a.yaml": "name: a\ntrigger:\n  type: compound\n  require: most\n"
            "  triggers: [{expect: a}, {expect: b}]\nactions: []\n"
        },
    )
    assert problem == (
        "a.yaml:4: trigger.require: must be any, all or a number from 1 to 2 (got 'most')"
    )


def test_negative_and_too_short_durations(automations_dir: Path) -> None:
    problems = problems_for(
        automations_dir,
        {
            "a.yaml": "name: a\ntrigger: {expect: a, within: -5}\nactions: []\n---\n"
            "name: b\ntrigger:\n  expect: a\n  posture: Proactive\n  within: 5s\nactions: []\n"
        },
    )
    assert problems[0].startswith("a.yaml:2: trigger.within: a duration cannot be negative")
    assert problems[1].startswith("a.yaml:6:")
    assert "10 seconds" in problems[1]


def test_bad_sample_file_is_a_problem(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "a.yaml": VALID,
            "templates/crashed.json.j2": '{"text": {{ event.event | tojson }}}',
            "templates/crashed.sample.json": "{not json",
        },
    )
    assert "bad sample events: crashed.sample.json is not readable JSON" in problem


def test_recursive_alias_is_a_problem(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir, {"a.yaml": "name: x\ntrigger: &t {expect: a, z: *t}\nactions: []\n"}
    )
    assert problem.startswith("a.yaml:2: recursive YAML alias")


def test_malformed_variable_reference(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {"a.yaml": "kind: block\ntype: webhook\nname: h\ndata: {url: '${SLACK-URL}'}\n"},
    )
    assert problem.startswith("a.yaml:4: malformed variable reference")


def test_values_from_the_environment_are_never_echoed(automations_dir: Path) -> None:
    secret = "https://hooks.slack.com/services/T0AAAA/B0BBBB/abcdefSECRET"
    problems = problems_for(
        automations_dir,
        {"a.yaml": "kind: block\ntype: webhook\nname: h\ndata: ${HOOK}\n"},
        env={"HOOK": secret},
    )
    assert problems
    assert all(secret[:30] not in p for p in problems), problems
    assert "(from the environment)" in problems[0]


def test_hand_quoted_strings_fail_the_awkward_sample(automations_dir: Path) -> None:
    text = VALID.replace(
        "    payload:\n      template: templates/crashed.json.j2\n",
        '    payload: \'{"text": "{{ event.resource.name }}"}\'\n',
    )
    (problem,) = problems_for(automations_dir, {"a.yaml": text})
    assert "with quotes, backslashes and newlines" in problem


def test_mapping_payload_with_jinja_is_escaped(automations_dir: Path) -> None:
    from triggers.render import sandbox as template

    text = VALID.replace(
        "    payload:\n      template: templates/crashed.json.j2\n",
        "    payload:\n      text: 'Run {{ event.resource.name }} crashed'\n",
    )
    (automations_dir / "a.yaml").write_text(text)
    bundle = load_bundle(automations_dir, environ={})
    ((_, action),) = list(bundle.automations[0].spec.all_actions())
    event = template.hostile(template.sample_event("a", "b"))
    rendered = template.render(
        action.payload_text,  # type: ignore[union-attr]
        template.context_for(
            event, {"name": "n", "trigger": {"type": "event", "posture": "Reactive"}, "actions": []}
        ),
    )
    assert template.json_error(rendered) is None
    assert '"quoted"' in json.loads(rendered)["text"]


def test_block_kind_must_fit_the_action(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "a.yaml": "name: x\ntrigger: {expect: a}\nactions:\n"
            "  - {type: send-notification, block: webhook/h, body: hi}\n"
        },
    )
    assert problem.startswith("a.yaml:4: actions[0].block: send-notification needs a notification")


def test_template_mapping_with_a_typo_is_an_error(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "a.yaml": "name: x\ntrigger: {expect: a}\nactions:\n"
            "  - {type: call-webhook, block: webhook/h, payload: {template: t.j2, x: 1}}\n"
        },
    )
    assert "unknown field 'x'" in problem


def test_owner_resource_is_refused_with_the_reason(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "a.yaml": "name: x\ntrigger: {expect: a}\nactions: []\n"
            "owner_resource: prefect.deployment.abc\n"
        },
    )
    assert problem.startswith("a.yaml:4: owner_resource: owner_resource cannot be kept in sync")


def test_server_only_rules_are_checked_at_load(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "a.yaml": "name: loop\ntrigger: {expect: prefect.flow-run.*}\n"
            "actions: [{type: run-deployment, source: inferred}]\n"
        },
    )
    assert problem.startswith("a.yaml:1: the server would refuse:")


def test_yaml_keys_keep_their_text_and_merge_keys_override(automations_dir: Path) -> None:
    problems = problems_for(
        automations_dir,
        {
            "a.yaml": "base: &b {expect: a, threshold: 1}\n"
            "name: x\ntrigger: {<<: *b, threshold: 2}\non: yes\nactions: []\n"
        },
    )
    assert [p.split(" (")[0] for p in problems] == [
        "a.yaml:1: base: unknown field 'base'",
        "a.yaml:4: on: unknown field 'on'",
    ]
