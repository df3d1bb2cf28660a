"""Checking templates with sample events, as the server will render them when an action runs.

Every call-webhook and send-notification template is rendered at load time in
the server's own sandbox against the samples shipped beside it
(``NAME.sample.json``), then again with every string made hostile (quotes,
newlines, a Slack mention) and made longer than any Slack field. A payload
that is not JSON, a Block Kit message Slack would refuse, or event text that
reaches Slack unescaped becomes a ``file:line`` problem. ``triggers.render.preview``
is the same rendering for a person: ``sync.py --render TEMPLATE --event sample.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triggers.errors import Location, PathKey, Problem, shown_path
from triggers.metrics.events import FIRING, metric_resource
from triggers.render import blockkit, sandbox
from triggers.spec.automation import AutomationSpec
from triggers.spec.metric import MetricTriggerSpec
from triggers.spec.notification import CallWebhookSpec, SendNotificationSpec
from triggers.spec.template import TemplateRef, looks_like_json
from triggers.spec.trigger import CompoundTriggerSpec, EventTriggerSpec, SequenceTriggerSpec

Report = Callable[[str, str], None]


def check_templates(
    spec: AutomationSpec,
    locate: Callable[[PathKey], Location],
    root: Path,
    problems: list[Problem],
    display_root: Path | None = None,
) -> None:
    """Render every notification template of ``spec`` against its sample events.

    ``locate`` turns a place in the automation's document into a ``file:line``.
    """
    context = automation_context(spec)
    for (field_name, index), action in spec.all_actions():
        if not isinstance(action, SendNotificationSpec | CallWebhookSpec):
            continue
        for attribute, value, as_json in action.templates():
            path = (field_name, index, attribute)
            if isinstance(value, TemplateRef):
                used_at = locate((*path, "template"))
                source = _Source(value.source, used_at, root, value, display_root)
                as_json = as_json or looks_like_json(value.source, value.template)
            else:
                source = _Source(str(value), locate(path))
            _check_one(source, as_json, _sample_events(spec, source.file), context, problems)


def automation_context(spec: AutomationSpec | None) -> dict[str, Any]:
    """The ``automation`` a template sees, as the server will build it after sync."""
    if spec is None:
        trigger = {"type": "event", "posture": "Reactive", "threshold": 1, "within": 0}
        return {"name": "preview", "trigger": trigger, "actions": []}
    return {
        "name": spec.name,
        "description": spec.description,
        "enabled": spec.enabled,
        "tags": spec.tags,
        "trigger": spec.trigger.compile().model_dump(mode="json"),
        "actions": [],
    }


@dataclass
class _Source:
    """A template's text and where to point a person at for a given line of it."""

    text: str
    used_at: Location
    root: Path | None = None
    ref: TemplateRef | None = None
    display_root: Path | None = None

    @property
    def file(self) -> Path | None:
        return self.root / self.ref.template if self.root and self.ref else None

    def locate(self, line: int = 0) -> Location:
        if self.ref is None or self.root is None:
            return self.used_at
        name, origin = self.ref.origin(line)
        shown = shown_path(self.root / name, self.display_root)
        return Location(shown, origin if line else 0)

    def suffix(self) -> str:
        return f" (used at {self.used_at})" if self.ref else ""


def _check_one(
    source: _Source,
    as_json: bool,
    samples: list[dict[str, Any]] | ValueError,
    context: dict[str, Any],
    problems: list[Problem],
) -> None:
    def report(message: str, hint: str) -> None:
        problems.append(Problem(source.locate(), message + source.suffix(), hint))

    error = sandbox.syntax_error(source.text)
    if error:
        location = source.locate(template_line(error))
        problems.append(Problem(location, error + source.suffix(), "fix the Jinja syntax"))
        return
    if isinstance(samples, ValueError):
        problems.append(Problem(Location(source.locate().file), f"bad sample events: {samples}"))
        return
    for which, event, hostile in variants(samples, as_json):
        if not render_checked(source.text, event, context, as_json, hostile, which, report):
            return


def variants(
    samples: list[dict[str, Any]], as_json: bool
) -> list[tuple[str, dict[str, Any], bool]]:
    """The samples, and for JSON payloads each made hostile, then made too long."""
    found = [(f"sample event {event['event']!r}", event, False) for event in samples]
    if not as_json:
        return found
    awkward = "with quotes, backslashes and newlines and a Slack mention in its values"
    long = f"with {sandbox.LONG:,}-character values"
    for event in samples:
        found.append((f"sample event {event['event']!r} {awkward}", sandbox.hostile(event), True))
    for event in samples:
        found.append(
            (f"sample event {event['event']!r} {long}", sandbox.hostile(event, True), True)
        )
    return found


def render_checked(
    source: str,
    event: dict[str, Any],
    context: dict[str, Any],
    as_json: bool,
    hostile: bool,
    which: str,
    report: Report,
) -> str | None:
    """The rendered payload, or None after reporting why the server or Slack would fail."""
    try:
        rendered = sandbox.render(source, sandbox.context_for(event, context))
    except ValueError as exc:
        report(
            f"{exc} for {which}", "guard optional values, e.g. {{ event.payload.x | default('') }}"
        )
        return None
    error = sandbox.json_error(rendered) if as_json else None
    if error:
        report(
            f"{error} for {which}", "put strings through `| tojson` instead of quoting them by hand"
        )
        return None
    if as_json and _slack_problems(json.loads(rendered), which, hostile, report):
        return None
    return rendered


def _slack_problems(message: Any, which: str, hostile: bool, report: Report) -> bool:
    """Report a Block Kit message Slack would refuse, or one an event can inject into."""
    if not blockkit.is_message(message):
        return False
    broken = blockkit.violations(message)
    if broken:
        report(
            f"Slack would refuse the message for {which}: {'; '.join(broken[:3])}",
            "truncate event text, e.g. {{ clip(event.payload.notes, 2900) | tojson }} "
            "with the macros of templates/_slack.j2",
        )
        return True
    leaks = blockkit.unescaped(message, sandbox.MENTION) if hostile else []
    if leaks:
        report(
            f"event text reaches Slack unescaped in {', '.join(leaks[:3])} for {which}",
            "escape & < > in mrkdwn user text, e.g. with esc() or clip() of templates/_slack.j2",
        )
        return True
    return False


def template_line(error: str) -> int:
    marker = "template line "
    if marker in error:
        digits = error.split(marker, 1)[1].split(":", 1)[0]
        if digits.isdigit():
            return int(digits)
    return 0


def load_samples(file: Path) -> list[dict[str, Any]]:
    """Events from a sample file (one event or a list); raises ValueError for people."""
    try:
        loaded = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file.name} is not readable JSON: {exc}") from exc
    events = loaded if isinstance(loaded, list) else [loaded]
    return [sandbox.sample_event_from(item) for item in events]


def sample_file(template_file: Path) -> Path:
    stem = template_file.name.removesuffix(".j2").removesuffix(".json")
    return template_file.with_name(f"{stem}.sample.json")


def _sample_events(
    spec: AutomationSpec, template_file: Path | None
) -> list[dict[str, Any]] | ValueError:
    """Samples shipped beside the template (NAME.sample.json), else one from the trigger."""
    if template_file is not None and sample_file(template_file).is_file():
        try:
            return load_samples(sample_file(template_file))
        except ValueError as exc:
            return exc
    event_name, resource = _first_expected(spec.trigger)
    return [sandbox.sample_event(event_name, resource)]


def _first_expected(trigger: Any) -> tuple[str, str]:
    if isinstance(trigger, EventTriggerSpec):
        event = next(iter(sorted(trigger.expect)), "janitor.sample")
        resource = trigger.match.get("prefect.resource.id", "janitor.sample")
        if isinstance(resource, list):
            resource = resource[0] if resource else "janitor.sample"
        return event.replace("*", "sample"), resource.replace("*", "sample")
    if isinstance(trigger, MetricTriggerSpec):
        return FIRING, metric_resource(trigger.rule_id)
    if isinstance(trigger, CompoundTriggerSpec | SequenceTriggerSpec):
        return _first_expected(trigger.triggers[0])
    return "janitor.sample", "janitor.sample"
