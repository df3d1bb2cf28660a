"""Every shipped Slack template, rendered in the server's sandbox with adversarial events:
valid JSON, within Slack's Block Kit limits, user text escaped and cut."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from prefect.server.schemas.core import FlowRun
from prefect.settings import PREFECT_UI_URL, temporary_settings

from helpers import AUTOMATIONS
from triggers.render import sandbox as templates
from triggers.render.check import automation_context, blockkit, load_samples, sample_file
from triggers.render.sandbox import MENTION
from triggers.spec.template import TemplateRef

SHIPPED = sorted(path.name for path in (AUTOMATIONS / "templates").glob("*.json.j2"))
AMPERSANDS = "&" * 20_000  # each becomes five characters once escaped
EMOJI = "🧹" * 5_000


def render(name: str, event: dict[str, Any], flow_run: FlowRun | None = None) -> dict[str, Any]:
    ref = TemplateRef(template=f"templates/{name}")
    ref.load(AUTOMATIONS)
    context = templates.context_for(event, automation_context(None))
    if flow_run is not None:
        context["flow_run"] = flow_run
    rendered = templates.render(ref.source, context)
    message: dict[str, Any] = json.loads(rendered)  # valid JSON, or the test fails here
    return message


def samples(name: str) -> list[dict[str, Any]]:
    return load_samples(sample_file(AUTOMATIONS / "templates" / name))


def spoiled(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The sample made awkward in every way an event can be."""

    def each(value: Any, leaf: Any) -> Any:
        if isinstance(value, dict):
            return {key: each(item, leaf) for key, item in value.items()}
        if isinstance(value, list):
            return [each(item, leaf) for item in value]
        return leaf(value)

    payload = event.get("payload") or {}
    return [
        ("hostile", templates.hostile(event)),
        ("long", templates.hostile(event, long=True)),
        ("empty payload", {**event, "payload": {}}),
        ("nulls", {**event, "payload": each(payload, lambda _: None)}),
        ("numbers as text", {**event, "payload": each(payload, lambda v: str(v))}),
        ("ampersands", {**event, "payload": each(payload, lambda _: AMPERSANDS)}),
        ("emoji", {**event, "payload": each(payload, lambda _: EMOJI)}),
        (
            "no name",
            {
                **event,
                "resource": {"prefect.resource.id": event["resource"]["prefect.resource.id"]},
            },
        ),
    ]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_template_has_samples_for_each_event_it_serves(name: str) -> None:
    assert sample_file(AUTOMATIONS / "templates" / name).is_file(), name
    assert samples(name)


@pytest.mark.parametrize("name", SHIPPED)
def test_adversarial_events_render_valid_escaped_block_kit(name: str) -> None:
    for sample in samples(name):
        for how, event in spoiled(sample):
            message = render(name, event)
            assert blockkit.violations(message) == [], (name, how)
            assert blockkit.unescaped(message, MENTION) == [], (name, how)
            assert blockkit.unescaped(message, "<!channel>") == [], (name, how)
            for path, text in _mrkdwn(message):
                assert not _cut_entity(text), (name, how, path)


def _mrkdwn(message: dict[str, Any]) -> list[tuple[str, str]]:
    return blockkit.mrkdwn_texts(message)


def _cut_entity(text: str) -> bool:
    """An escape sequence cut in half shows as text: '&am' at the end, before the ellipsis."""
    tail = text.removesuffix("…")
    last = tail.rfind("&")
    return last >= 0 and ";" not in tail[last:]


def test_long_notes_are_cut_inside_slacks_limit_and_say_so() -> None:
    (event, *_) = samples("approval-answered.json.j2")
    event = {**event, "payload": {**event["payload"], "notes": "x & y " * 10_000}}
    message = render("approval-answered.json.j2", event)
    (notes,) = [text for _, text in _mrkdwn(message) if text.startswith("*Notes:*")]
    assert len(notes) <= blockkit.MAX_TEXT
    assert "x &amp; y" in notes
    assert "…" in notes


def test_user_text_cannot_mention_ping_or_link() -> None:
    (event, *_) = samples("approval-answered.json.j2")
    evil = "<!channel> <@U024BE7LH> <https://evil.example|click> & more"
    event = {**event, "payload": {**event["payload"], "notes": evil, "approver": evil}}
    message = render("approval-answered.json.j2", event)
    everything = json.dumps(message)
    for raw in ("<!channel>", "<@U024BE7LH>", "<https://evil.example"):
        assert raw not in everything
    assert "&lt;!channel&gt; &lt;@U024BE7LH&gt; &lt;https://evil.example|click&gt; &amp; more" in (
        everything
    )


def test_the_approval_request_carries_the_buttons_the_slack_app_answers() -> None:
    (event, *_) = samples("approval-requested.json.j2")
    run_id = event["resource"]["prefect.resource.id"].removeprefix("janitor.cleanup.")
    flow_run = FlowRun(id=uuid.UUID(run_id), flow_id=uuid.uuid4(), name="tidy-octopus")
    with temporary_settings({PREFECT_UI_URL: "http://127.0.0.1:4200"}):
        message = render("approval-requested.json.j2", event, flow_run)
    (actions,) = [block for block in message["blocks"] if block["type"] == "actions"]
    assert actions["block_id"] == "janitor-approval"
    by_id = {element["action_id"]: element for element in actions["elements"]}
    assert by_id["janitor-approve"]["value"] == run_id
    assert by_id["janitor-reject"]["value"] == run_id
    assert by_id["janitor-open"]["url"] == f"http://127.0.0.1:4200/runs/flow-run/{run_id}"
    text = json.dumps(message)
    for fact in ("12,345 flow runs", "2026-10-23 14:00 UTC", "Completed: 10,000", "brave-lemur"):
        assert fact in text
    assert "No answer within 1h 00m means no" in text


def test_the_ai_request_has_no_buttons_to_click() -> None:
    (_, event) = samples("approval-requested.json.j2")
    message = render("approval-requested.json.j2", event)
    assert not [block for block in message["blocks"] if block["type"] == "actions"]
    assert "anthropic:claude-sonnet-4-5" in json.dumps(message)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"bytes_freed": 1207959552, "bytes_before": 1610612736, "bytes_after": 402653184},
            "1.1 GiB freed (1.5 GiB → 384.0 MiB)",
        ),
        ({"bytes_freed": 0, "bytes_before": 4096, "bytes_after": 4096}, "no space given back yet"),
        ({"bytes_freed": None, "bytes_before": None}, "not measured"),
        ({"duration_seconds": 200.0}, "3m 20s"),
        ({"deleted": 1234567}, "1,234,567 flow runs"),
    ],
)
def test_numbers_read_like_a_person_wrote_them(payload: dict[str, Any], expected: str) -> None:
    (event, *_) = samples("deletion-completed.json.j2")
    event = {**event, "payload": {**event["payload"], **payload}}
    assert expected in json.dumps(render("deletion-completed.json.j2", event), ensure_ascii=False)


def test_every_message_names_its_event() -> None:
    for name in SHIPPED:
        for event in samples(name):
            message = render(name, event)
            ids = [block.get("block_id", "") for block in message["blocks"]]
            assert f"janitor-event-{event['id']}" in ids, name
