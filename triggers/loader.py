"""Loading the automations folder into validated specs, or every problem at once."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from uuid import UUID

from prefect.events.schemas.automations import AutomationCore
from pydantic import BaseModel, TypeAdapter, ValidationError

from triggers import template as templates
from triggers.action import CallWebhookSpec, RunDeploymentSpec, SendNotificationSpec
from triggers.automation import ACTION_LISTS, AutomationSpec, BlockSpec, DocumentSpec
from triggers.blocks import block_kind_error, validate_block_data
from triggers.errors import Location, Problem, SpecError
from triggers.problems import closest, dotted, from_validation
from triggers.source import Document, PathKey, interpolate, read_documents
from triggers.template import TemplateRef
from triggers.trigger import CompoundTriggerSpec, EventTriggerSpec, SequenceTriggerSpec

SpecT = TypeVar("SpecT", AutomationSpec, BlockSpec)

_DOCUMENT = TypeAdapter(DocumentSpec)


@dataclass
class Declared(Generic[SpecT]):
    """A validated spec and the document it came from, for `file:line` later on."""

    spec: SpecT
    document: Document

    def locate(self, path: PathKey = ()) -> Location:
        return self.document.locate(path)


@dataclass
class Bundle:
    """Everything declared in an automations folder."""

    root: Path
    automations: list[Declared[AutomationSpec]] = field(default_factory=list)
    blocks: list[Declared[BlockSpec]] = field(default_factory=list)

    def automation(self, name: str) -> Declared[AutomationSpec] | None:
        return next((a for a in self.automations if a.spec.name == name), None)

    def block(self, reference: str) -> Declared[BlockSpec] | None:
        return next((b for b in self.blocks if b.spec.reference == reference), None)


def spec_files(root: Path) -> list[Path]:
    """The YAML files of a folder, templates excluded, in a stable order."""
    found = [
        path
        for pattern in ("*.yaml", "*.yml")
        for path in root.rglob(pattern)
        if "templates" not in path.relative_to(root).parts[:-1]
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    return sorted(found)


def load_bundle(
    root: Path,
    *,
    environ: Mapping[str, str] | None = None,
    display_root: Path | None = None,
) -> Bundle:
    """Read, interpolate, validate and check every spec under ``root``.

    Raises ``SpecError`` listing every problem; nothing is partially returned,
    so a caller can never act on half a folder.
    """
    if not root.is_dir():
        raise SpecError(
            [Problem(Location(root), "automations folder not found", "pass --path DIR")]
        )
    bundle = Bundle(root=root)
    problems: list[Problem] = []
    env = os.environ if environ is None else environ
    for file in spec_files(root):
        shown = _display(file, display_root)
        try:
            documents = list(read_documents(file, shown))
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        for document in documents:
            for part in _split(document, problems):
                problems.extend(interpolate(part, env))
                _validate(part, bundle, problems, display_root)
    if not bundle.automations and not bundle.blocks and not problems:
        problems.append(
            Problem(
                Location(root),
                "no automations found",
                "add a .yaml file with `name:`, `trigger:` and `actions:`",
            )
        )
    problems.extend(_duplicates(bundle))
    problems.extend(_block_kinds(bundle))
    if problems:
        raise SpecError(problems)
    return bundle


def _display(file: Path, display_root: Path | None) -> Path:
    base = display_root or Path.cwd()
    try:
        return file.resolve().relative_to(base.resolve())
    except ValueError:
        return file


def _split(document: Document, problems: list[Problem]) -> list[Document]:
    """A document is one spec, or ``{automations: [...]}`` holding several."""
    data = document.data
    if data is None:
        return []
    if isinstance(data, dict) and set(data) == {"automations"}:
        items = data["automations"]
        if not isinstance(items, list):
            problems.append(
                Problem(document.locate(("automations",)), "automations must be a list")
            )
            return []
        return [document.child("automations").child(index) for index in range(len(items))]
    if not isinstance(data, dict):
        problems.append(
            Problem(
                document.location,
                f"expected a mapping (an automation or a block), got {type(data).__name__}",
                "start the document with `name: ...`",
            )
        )
        return []
    return [document]


def _validate(
    document: Document, bundle: Bundle, problems: list[Problem], display_root: Path | None
) -> None:
    try:
        spec = _DOCUMENT.validate_python(document.data)
    except ValidationError as exc:
        problems.extend(from_validation(exc, document))
        return
    if isinstance(spec, BlockSpec):
        found = validate_block_data(spec)
        problems.extend(
            Problem(document.locate(path), message, hint) for path, message, hint in found
        )
        bundle.blocks.append(Declared(spec, document))
        return
    before = len(problems)
    _load_templates(spec, document, bundle.root, problems)
    core = _compile(spec, document, problems) if len(problems) == before else None
    if core is not None:
        _check_templates(spec, document, bundle.root, problems, display_root)
    if core is not None and len(problems) == before:
        _check_server_rules(core, document, problems)
    if len(problems) == before:
        bundle.automations.append(Declared(spec, document))


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


def _compile(
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


def _check_server_rules(core: AutomationCore, document: Document, problems: list[Problem]) -> None:
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


def _duplicates(bundle: Bundle) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[tuple[str, str], Declared[Any]] = {}
    everything: list[Declared[Any]] = [*bundle.automations, *bundle.blocks]
    for declared in everything:
        spec = declared.spec
        key = spec.reference if isinstance(spec, BlockSpec) else spec.name
        kind = "block" if isinstance(spec, BlockSpec) else "automation"
        first = seen.setdefault((kind, key), declared)
        if first is not declared:
            problems.append(
                Problem(
                    declared.locate(("name",)),
                    f"{kind} {key!r} is declared twice (first at {first.locate(('name',))})",
                    "rename one of them or delete the copy",
                )
            )
    return problems


def _load_templates(
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


def _block_kinds(bundle: Bundle) -> list[Problem]:
    """call-webhook needs a Webhook block, send-notification a notification block.

    The server only finds out when the action runs ("not a webhook block"),
    long after sync reported success.
    """
    problems: list[Problem] = []
    for declared in bundle.automations:
        for (field_name, index), action in declared.spec.all_actions():
            if not isinstance(action, CallWebhookSpec | SendNotificationSpec):
                continue
            if action.block is None:
                continue
            slug = action.block.split("/", 1)[0]
            error = block_kind_error(slug, webhook=isinstance(action, CallWebhookSpec))
            if error:
                problems.append(
                    Problem(
                        declared.locate((field_name, index, "block")),
                        f"{field_name}[{index}].block: {error}",
                        "call-webhook takes webhook/NAME; send-notification takes a "
                        "notification block such as slack-webhook/NAME",
                    )
                )
    return problems


def _check_templates(
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
                _display(template_file, display_root) if template_file else None,
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
