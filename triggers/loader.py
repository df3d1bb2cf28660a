"""Loading the automations folder into validated specs, or every problem at once."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from triggers import template as templates
from triggers.action import CallWebhookSpec, RunDeploymentSpec, SendNotificationSpec
from triggers.automation import AutomationSpec, BlockSpec, DocumentSpec
from triggers.blocks import validate_block_data
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
                _validate(part, bundle, problems)
    if not bundle.automations and not bundle.blocks and not problems:
        problems.append(
            Problem(
                Location(root),
                "no automations found",
                "add a .yaml file with `name:`, `trigger:` and `actions:`",
            )
        )
    problems.extend(_duplicates(bundle))
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


def _validate(document: Document, bundle: Bundle, problems: list[Problem]) -> None:
    try:
        spec = _DOCUMENT.validate_python(document.data)
    except ValidationError as exc:
        problems.extend(from_validation(exc, document))
        return
    if isinstance(spec, BlockSpec):
        found = validate_block_data(spec)
        problems.extend(
            Problem(document.locate(("data", *path)), message, hint)
            for path, message, hint in found
        )
        bundle.blocks.append(Declared(spec, document))
        return
    before = len(problems)
    _check_templates(spec, document, bundle.root, problems)
    if len(problems) == before:
        bundle.automations.append(Declared(spec, document))


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


def _check_templates(
    spec: AutomationSpec, document: Document, root: Path, problems: list[Problem]
) -> None:
    """Load template files and render every Jinja string against a sample event."""
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
                    problems.append(Problem(document.locate((*where, *key)), error))
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
                try:
                    value.load(root)
                except (OSError, ValueError) as exc:
                    available = [
                        str(p.relative_to(root)) for p in root.glob("templates/*") if p.is_file()
                    ]
                    hint = ", ".join(closest(name, available)) or "check the path"
                    problems.append(
                        Problem(
                            document.locate((*path, "template")),
                            f"{dotted(path)}: cannot read template {name}: "
                            f"{getattr(exc, 'strerror', None) or exc}",
                            f"did you mean {hint}?" if "," not in hint else hint,
                        )
                    )
                    continue
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
                _display_path(template_file, document.file, root) if template_file else None,
            )


def _display_path(template_file: Path, spec_file: Path, root: Path) -> Path:
    # Show the template beside the spec file the way the user sees it.
    try:
        return spec_file.parent / template_file.relative_to(root)
    except ValueError:
        return template_file


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
    for event in _sample_events(spec, template_file):
        try:
            rendered = templates.render(source, templates.context_for(event, automation_context))
        except ValueError as exc:
            problems.append(
                Problem(
                    Location(shown_file) if shown_file else used_at,
                    f"{exc} for sample event {event['event']!r}"
                    + (f" (used at {used_at})" if shown_file else ""),
                    "guard optional values, e.g. {{ event.payload.x | default('') }}",
                )
            )
            return
        if as_json:
            error = templates.json_error(rendered)
            if error:
                problems.append(
                    Problem(
                        Location(shown_file) if shown_file else used_at,
                        f"{error} for sample event {event['event']!r}"
                        + (f" (used at {used_at})" if shown_file else ""),
                        "put strings through `| tojson` instead of quoting them by hand",
                    )
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
            loaded = json.loads(sample.read_text(encoding="utf-8"))
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
