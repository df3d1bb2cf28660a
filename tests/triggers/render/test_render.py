"""Shared macros inlined by sync, errors that point into the right file, and the
``sync.py --render`` preview a person runs before committing a template."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from helpers.servers import problems_for
from triggers.load.bundle import load_bundle
from triggers.spec.notification import CallWebhookSpec
from triggers.spec.template import TemplateRef, inline

SCRIPT = ROOT / "scripts" / "sync.py"

SPEC = """\
name: notify
trigger: {expect: janitor.sample, match: {prefect.resource.id: janitor.sample}}
actions:
  - type: call-webhook
    block: webhook/slack
    payload: {template: templates/message.json.j2}
"""
BLOCK = "kind: block\ntype: webhook\nname: slack\ndata: {url: 'http://127.0.0.1:9/'}\n"
MACROS = """\
{%- macro shout(value) -%}
{{- value | upper -}}
{%- endmacro -%}
"""
MESSAGE = """\
{#- a comment line -#}
{%- from "_macros.j2" import shout -%}
{"text": {{ shout(event.resource.name) | tojson }}}
"""


def test_an_import_is_inlined_and_renders_on_the_server_alone(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "_macros.j2").write_text(MACROS)
    (tmp_path / "templates" / "message.json.j2").write_text(MESSAGE)

    source, origins = inline("templates/message.json.j2", tmp_path)

    assert "{% from" not in source.replace("{%- from", "{% from")
    assert "macro shout" in source
    # Each line of the result knows where it came from.
    assert origins[0] == ("templates/message.json.j2", 1)
    assert ("templates/_macros.j2", 3) in origins
    (used,) = [i for i, line in enumerate(source.splitlines()) if "shout(event" in line]
    assert origins[used] == ("templates/message.json.j2", 3)


def test_the_inlined_template_loads_and_passes_the_checks(automations_dir: Path) -> None:
    (automations_dir / "templates" / "_macros.j2").write_text(MACROS)
    (automations_dir / "templates" / "message.json.j2").write_text(MESSAGE)
    (automations_dir / "a.yaml").write_text(SPEC)
    (automations_dir / "b.yaml").write_text(BLOCK)

    bundle = load_bundle(automations_dir, environ={})

    (declared,) = bundle.automations
    action = declared.spec.actions[0]
    assert isinstance(action, CallWebhookSpec)
    assert isinstance(action.payload, TemplateRef)
    assert "macro shout" in action.payload.source


def test_a_syntax_error_in_the_macros_names_their_file_and_line(automations_dir: Path) -> None:
    broken = MACROS.replace("{{- value | upper -}}", "{{- value | upper -}")
    (problem,) = problems_for(
        automations_dir,
        {
            "templates/_macros.j2": broken,
            "templates/message.json.j2": MESSAGE,
            "a.yaml": SPEC,
            "b.yaml": BLOCK,
        },
    )
    assert problem.startswith("templates/_macros.j2:2: template syntax error"), problem
    assert "used at a.yaml:6" in problem


def test_a_syntax_error_after_the_import_names_the_templates_own_line(
    automations_dir: Path,
) -> None:
    (problem,) = problems_for(
        automations_dir,
        {
            "templates/_macros.j2": MACROS,
            "templates/message.json.j2": MESSAGE + "{{ oops }\n",
            "a.yaml": SPEC,
            "b.yaml": BLOCK,
        },
    )
    assert problem.startswith("templates/message.json.j2:4: template syntax error"), problem


def test_a_missing_import_names_the_line_that_asks_for_it(automations_dir: Path) -> None:
    (problem,) = problems_for(
        automations_dir,
        {"templates/message.json.j2": MESSAGE, "a.yaml": SPEC, "b.yaml": BLOCK},
    )
    assert "cannot read template templates/message.json.j2" in problem
    assert "line 2 imports templates/_macros.j2" in problem


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            '{"type": "section", "text": {"type": "mrkdwn", "text": NAME}}',
            ["event text reaches Slack unescaped in blocks[0].text.text", "esc() or clip()"],
        ),
        (
            '{"type": "header", "text": {"type": "plain_text", "text": NAME}}',
            [
                "Slack would refuse the message",
                "blocks[0].text.text: 6,000 characters, Slack's limit is 150",
            ],
        ),
    ],
)
def test_a_message_slack_would_refuse_or_that_leaks_fails_the_load(
    automations_dir: Path, block: str, expected: list[str]
) -> None:
    name = "{{ event.resource.name | tojson }}"
    message = '{"text": "x", "blocks": [' + block.replace("NAME", name) + "]}"
    (problem,) = problems_for(
        automations_dir,
        {"templates/message.json.j2": message, "a.yaml": SPEC, "b.yaml": BLOCK},
    )
    for part in expected:
        assert part in problem


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--render", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )


def test_render_prints_each_sample_and_says_it_is_ok() -> None:
    result = render("templates/metric.json.j2")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "database.size_bytes* is *1.4 GiB*" in result.stdout
    assert "back to normal" in result.stdout
    assert "ok: valid, within Slack's limits, user text escaped" in result.stdout


def test_render_takes_an_event_file(tmp_path: Path) -> None:
    event = {
        "event": "janitor.deletion.started",
        "resource": {"prefect.resource.id": "janitor.cleanup.1", "prefect.resource.name": "r"},
        "payload": {"approved": 7, "cutoff": "2026-01-01T00:00:00+00:00", "path": "api"},
    }
    (tmp_path / "started.json").write_text(json.dumps(event))
    result = render(
        "automations/templates/deletion-started.json.j2", "--event", str(tmp_path / "started.json")
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Deleting 7 flow runs* that ended before 2026-01-01 00:00 UTC" in result.stdout


def test_render_reports_a_broken_template_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "bad.json.j2").write_text('{"text": "{{ event.resource.name }}"}')
    result = render(str(tmp_path / "bad.json.j2"))
    assert result.returncode == 1
    assert "payload does not render valid JSON" in result.stdout
    assert "tojson" in result.stdout


def test_render_of_a_missing_file_says_so() -> None:
    result = render("templates/nope.json.j2")
    assert result.returncode == 1
    assert "cannot read" in result.stdout
