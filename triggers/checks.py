"""Checks made while loading, beyond the spec's own validation.

Each turns a failure that would otherwise surface late (at apply time on the
server, or when an action runs at 3 a.m.) into a `file:line` problem now:
template files, rendering under the server's sandbox, the server's own model
rules, and block kinds that fit their actions.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.events.schemas.automations import AutomationCore
from pydantic import BaseModel, ValidationError

from triggers import template as templates
from triggers.action import CallWebhookSpec, RunDeploymentSpec, SendNotificationSpec
from triggers.automation import ACTION_LISTS, AutomationSpec
from triggers.blocks import block_kind_error
from triggers.errors import Location, Problem
from triggers.metric import FIRING, MetricTriggerSpec, resource_id
from triggers.problems import closest, dotted, from_validation
from triggers.source import Document, PathKey
from triggers.template import TemplateRef
from triggers.trigger import CompoundTriggerSpec, EventTriggerSpec, SequenceTriggerSpec


def display(file: Path, display_root: Path | None) -> Path:
    base = display_root or Path.cwd()
    try:
        return file.resolve().relative_to(base.resolve())
    except ValueError:
        return file


class _StandIn:
    """Resolves every name to a stable stand-in id, to compile before a server is asked."""

    def _any(self, kind: str, name: str) -> UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"prefect-janitor:{kind}:{name}")

    def deployment(self, name: str, where: PathKey) -> UUID:
        return self._any("deployment", name)

    def block(self, name: str, where: PathKey) -> UUID:
        return self._any("block", name)

    def automation(self, name: str, where: PathKey) -> UUID:
        return self._any("automation", name)

    def work_pool(self, name: str, where: PathKey) -> UUID:
        return self._any("work_pool", name)

    def work_queue(self, name: str, where: PathKey) -> UUID:
        return self._any("work_queue", name)


def compile_offline(
    spec: AutomationSpec, document: Document, problems: list[Problem]
) -> AutomationCore | None:
    """Compile to Prefect's client model; its own rules (e.g. Proactive ``within``) apply."""
    try:
        spec.trigger.compile()
    except ValidationError as exc:
        problems.extend(from_validation(exc, document, prefix=("trigger",)))
        return None
    try:
        return spec.compile(_StandIn())
    except ValidationError as exc:
        problems.extend(from_validation(exc, document))
    except ValueError as exc:
        problems.append(Problem(document.location, str(exc)))
    return None


def check_server_rules(core: AutomationCore, document: Document, problems: list[Problem]) -> None:
    """Validate with the server's own models, which check more than the client's.

    For example a run-deployment action that would re-trigger its own
    automation is refused only by the server; finding it here keeps a plan from
    promising a create that fails halfway through an apply.
    """
    from prefect.server.events.schemas.automations import AutomationCore as ServerAutomation

    data = core.model_dump(mode="json")
    try:
        ServerAutomation.model_validate(data)
        return
    except ValidationError as exc:
        whole = exc
    # The server's action union is not discriminated; validating each action
    # with its own class turns a wall of union errors into one line per fault.
    for field_name in ACTION_LISTS:
        for index, action in enumerate(data[field_name]):
            model = _server_action(action["type"])
            try:
                model.model_validate(action)
            except ValidationError as exc:
                problems.extend(from_validation(exc, document, prefix=(field_name, index)))
    for item in whole.errors(include_url=False):
        if not item["loc"]:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(Problem(document.location, f"the server would refuse: {message}"))


def _server_action(action_type: str) -> type[BaseModel]:
    from typing import get_args

    from prefect.server.events.actions import ServerActionTypes

    by_type = {
        get_args(cls.model_fields["type"].annotation)[0]: cls for cls in get_args(ServerActionTypes)
    }
    return by_type[action_type]


def load_templates(
    spec: AutomationSpec, document: Document, root: Path, problems: list[Problem]
) -> None:
    for (field_name, index), action in spec.all_actions():
        if not isinstance(action, SendNotificationSpec | CallWebhookSpec):
            continue
        for attribute, value, _ in action.templates():
            if not isinstance(value, TemplateRef):
                continue
            path = (field_name, index, attribute)
            try:
                value.load(root)
            except (OSError, ValueError) as exc:
                available = [
                    str(p.relative_to(root)) for p in root.glob("templates/*") if p.is_file()
                ]
                near = closest(value.template, available)
                problems.append(
                    Problem(
                        document.locate((*path, "template")),
                        f"{dotted(path)}: cannot read template {value.template}: "
                        f"{getattr(exc, 'strerror', None) or exc}",
                        f"did you mean {' or '.join(near)}?" if near else "check the path",
                    )
                )


def check_block_kinds(spec: AutomationSpec, document: Document, problems: list[Problem]) -> None:
    """call-webhook needs a Webhook block, send-notification a notification block.

    The server only finds out when the action runs ("not a webhook block"),
    long after sync reported success.
    """
    for (field_name, index), action in spec.all_actions():
        if not isinstance(action, CallWebhookSpec | SendNotificationSpec) or action.block is None:
            continue
        slug = action.block.split("/", 1)[0]
        error = block_kind_error(slug, webhook=isinstance(action, CallWebhookSpec))
        if error:
            problems.append(
                Problem(
                    document.locate((field_name, index, "block")),
                    f"{field_name}[{index}].block: {error}",
                    "call-webhook takes webhook/NAME; send-notification takes a "
                    "notification block such as slack-webhook/NAME",
                )
            )


def check_templates(
    spec: AutomationSpec,
    document: Document,
    root: Path,
    problems: list[Problem],
    display_root: Path | None = None,
) -> None:
    """Render every Jinja string as the server would, against sample events."""
    automation_context = {
        "name": spec.name,
        "description": spec.description,
        "enabled": spec.enabled,
        "tags": spec.tags,
        "trigger": spec.trigger.compile().model_dump(mode="json"),
        "actions": [],
    }
    for (field_name, index), action in spec.all_actions():
        where: PathKey = (field_name, index)
        if isinstance(action, RunDeploymentSpec):
            for key, text in _strings(action.parameters or {}, ("parameters",)):
                error = templates.syntax_error(text) if "{" in text else None
                if error:
                    problems.append(
                        Problem(
                            document.locate((*where, *key)), f"{dotted((*where, *key))}: {error}"
                        )
                    )
            continue
        if not isinstance(action, SendNotificationSpec | CallWebhookSpec):
            continue
        for attribute, value, as_json in action.templates():
            path = (*where, attribute)
            ref_path = (*path, "template") if isinstance(value, TemplateRef) else path
            source_location = document.locate(ref_path)
            name = ""
            if isinstance(value, TemplateRef):
                name = value.template
                as_json = as_json or templates.looks_like_json(value.source, name)
            source = value.source if isinstance(value, TemplateRef) else str(value)
            template_file = root / name if name else None
            _check_one(
                source,
                as_json,
                template_file,
                source_location,
                spec,
                automation_context,
                problems,
                display(template_file, display_root) if template_file else None,
            )


def _check_one(
    source: str,
    as_json: bool,
    template_file: Path | None,
    used_at: Location,
    spec: AutomationSpec,
    automation_context: dict[str, Any],
    problems: list[Problem],
    shown_file: Path | None,
) -> None:
    error = templates.syntax_error(source)
    if error:
        line = _template_line(error)
        location = Location(shown_file, line) if shown_file else used_at
        suffix = f" (used at {used_at})" if shown_file else ""
        problems.append(Problem(location, error + suffix, "fix the Jinja syntax"))
        return
    try:
        events = _sample_events(spec, template_file)
    except ValueError as exc:
        problems.append(Problem(Location(shown_file or used_at.file), f"bad sample events: {exc}"))
        return
    plain = len(events)
    if as_json:
        events += [templates.hostile(event) for event in events]

    def report(message: str, hint: str) -> None:
        suffix = f" (used at {used_at})" if shown_file else ""
        where = Location(shown_file) if shown_file else used_at
        problems.append(Problem(where, message + suffix, hint))

    for number, event in enumerate(events):
        which = f"sample event {event['event']!r}" + (
            " with quotes, backslashes and newlines in its values" if number >= plain else ""
        )
        try:
            rendered = templates.render(source, templates.context_for(event, automation_context))
        except ValueError as exc:
            report(
                f"{exc} for {which}",
                "guard optional values, e.g. {{ event.payload.x | default('') }}",
            )
            return
        error = templates.json_error(rendered) if as_json else None
        if error:
            report(
                f"{error} for {which}",
                "put strings through `| tojson` instead of quoting them by hand",
            )
            return


def _template_line(error: str) -> int:
    marker = "template line "
    if marker in error:
        digits = error.split(marker, 1)[1].split(":", 1)[0]
        if digits.isdigit():
            return int(digits)
    return 0


def _sample_events(spec: AutomationSpec, template_file: Path | None) -> list[dict[str, Any]]:
    """Samples shipped beside the template (NAME.sample.json), else one from the trigger."""
    if template_file is not None:
        stem = template_file.name.removesuffix(".j2").removesuffix(".json")
        sample = template_file.with_name(f"{stem}.sample.json")
        if sample.is_file():
            try:
                loaded = json.loads(sample.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"{sample.name} is not readable JSON: {exc}") from exc
            events = loaded if isinstance(loaded, list) else [loaded]
            return [templates.sample_event_from(item) for item in events]
    event_name, resource_id = _first_expected(spec.trigger)
    return [templates.sample_event(event_name, resource_id)]


def _first_expected(trigger: Any) -> tuple[str, str]:
    if isinstance(trigger, EventTriggerSpec):
        event = next(iter(sorted(trigger.expect)), "janitor.sample")
        resource = trigger.match.get("prefect.resource.id", "janitor.sample")
        if isinstance(resource, list):
            resource = resource[0] if resource else "janitor.sample"
        return event.replace("*", "sample"), resource.replace("*", "sample")
    if isinstance(trigger, MetricTriggerSpec):
        return FIRING, resource_id(trigger.rule_id)
    if isinstance(trigger, CompoundTriggerSpec | SequenceTriggerSpec):
        return _first_expected(trigger.triggers[0])
    return "janitor.sample", "janitor.sample"


def _strings(value: Any, path: PathKey) -> list[tuple[PathKey, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _strings(item, (*path, key))]
    if isinstance(value, list):
        return [pair for i, item in enumerate(value) for pair in _strings(item, (*path, i))]
    return []
