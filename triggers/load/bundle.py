"""Loading the automations folder into validated specs, or every problem at once."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from prefect.types import MAX_VARIABLE_VALUE_LENGTH
from pydantic import TypeAdapter, ValidationError

from triggers.errors import Location, PathKey, Problem, SpecError, shown_path
from triggers.load import checks
from triggers.load.problems import from_validation
from triggers.load.source import Document, interpolate, read_documents
from triggers.metrics.rule import Rule
from triggers.render.check import check_templates
from triggers.spec.automation import AutomationSpec
from triggers.spec.blocks import BlockSpec, validate_block_data
from triggers.spec.document import DocumentSpec

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

    def tagged(self, tag: str) -> set[str]:
        """Names of the automations carrying ``tag``, e.g. for ``sync(only=...)``."""
        return {a.spec.name for a in self.automations if tag in a.spec.tags}

    def with_companions(self, only: set[str] | None) -> set[str] | None:
        """``--only NAME`` also covers the companion that resolves NAME's metric breaches."""
        if not only:
            return only
        return only | {a.spec.name for a in self.automations if a.spec.resolves in only}

    def rules(self, only: set[str] | None = None) -> list[tuple[Rule, Declared[AutomationSpec]]]:
        """Every metric rule declared, with where it was declared."""
        return [
            (rule, declared)
            for declared in self.automations
            if not only or declared.spec.name in only
            for rule in declared.spec.rules()
        ]


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
        shown = shown_path(file, display_root)
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
    if problems:
        raise SpecError(problems)
    return bundle


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
    checks.load_templates(spec, document, bundle.root, problems)
    core = checks.compile_offline(spec, document, problems) if len(problems) == before else None
    if core is not None:
        checks.check_parameters(spec, document, problems)
        check_templates(spec, document.locate, bundle.root, problems, display_root)
    if core is not None and len(problems) == before:
        checks.check_server_rules(core, document, problems)
    checks.check_block_kinds(spec, document, problems)
    if len(problems) == before:
        bundle.automations.append(Declared(spec, document))
        companion = spec.companion()
        if companion is not None:
            bundle.automations.append(Declared(companion, document))


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
    rules: dict[str, Declared[AutomationSpec]] = {}
    for rule, declared in bundle.rules():
        first_rule = rules.setdefault(rule.id, declared)
        if first_rule is not declared:
            problems.append(
                Problem(
                    declared.locate(("trigger",)),
                    f"metric rule id {rule.id!r} is used twice "
                    f"(first by {first_rule.spec.name!r} at {first_rule.locate(('trigger',))})",
                    "give one of the metric triggers its own `id:`",
                )
            )
        if len(json.dumps(rule.published())) > MAX_VARIABLE_VALUE_LENGTH:
            problems.append(
                Problem(
                    declared.locate(("trigger",)),
                    f"metric rule {rule.id!r} is too long to publish "
                    f"(a Prefect Variable holds {MAX_VARIABLE_VALUE_LENGTH} characters)",
                    "shorten its query (fewer flows, deployments or tags)",
                )
            )
    return problems
