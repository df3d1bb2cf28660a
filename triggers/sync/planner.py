"""Planning: comparing the declarations with the server, step by step."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.events.schemas.automations import AutomationCore
from pydantic import ValidationError

from triggers.errors import Location, Problem, SpecError
from triggers.load.bundle import Bundle, Declared
from triggers.spec import blocks as block_specs
from triggers.spec.automation import OWNER_TAG, AutomationSpec
from triggers.spec.blocks import BlockSpec
from triggers.sync.compare import Change, canonical, diff, from_server
from triggers.sync.plan import Plan, Step, Verb
from triggers.sync.resolve import ServerResolver, ServerState, placeholder
from triggers.sync.rules import rule_steps


def compile_all(
    bundle: Bundle,
    state: ServerState,
    pending: dict[str, dict[str, UUID]],
    only: set[str] | None = None,
) -> dict[str, AutomationCore]:
    """Every selected automation as Prefect's model, or ``SpecError`` for unknown names."""
    problems: list[Problem] = []
    compiled: dict[str, AutomationCore] = {}
    for declared in bundle.automations:
        if only and declared.spec.name not in only:
            continue
        resolver = ServerResolver(state, declared, problems, pending)
        compiled[declared.spec.name] = declared.spec.compile(resolver)
    if problems:
        raise SpecError(problems)
    return compiled


def make_plan(
    bundle: Bundle,
    state: ServerState,
    *,
    prune: bool = False,
    only: set[str] | None = None,
) -> Plan:
    """Compare declarations with the server; raises ``SpecError`` before any write."""
    if only:
        unknown = only - {a.spec.name for a in bundle.automations}
        if unknown:
            names = [a.spec.name for a in bundle.automations]
            raise SpecError(
                [
                    Problem(
                        _root_location(bundle),
                        f"--only {name!r} is not declared",
                        "declared: " + ", ".join(sorted(names)),
                    )
                    for name in sorted(unknown)
                ]
            )
    only = bundle.with_companions(only)
    steps: list[Step] = []
    needed_blocks = _blocks_in_scope(bundle, only)
    pending: dict[str, dict[str, UUID]] = {"block": {}, "automation": {}}
    for declared_block in bundle.blocks:
        if declared_block.spec.reference not in needed_blocks:
            continue
        step = _block_step(declared_block, state)
        if step.verb == Verb.CREATE:
            pending["block"][step.name] = placeholder("block", step.name)
        steps.append(step)

    by_name: dict[str, list[dict[str, Any]]] = {}
    for raw in state.automations:
        by_name.setdefault(raw["name"], []).append(raw)
    for declared in bundle.automations:
        name = declared.spec.name
        if (not only or name in only) and not _owned(by_name.get(name, [])):
            pending["automation"][name] = placeholder("automation", name)

    compiled = compile_all(bundle, state, pending, only)
    declared_names = {a.spec.name for a in bundle.automations}
    for declared in bundle.automations:
        name = declared.spec.name
        if only and name not in only:
            continue
        steps.append(_automation_step(declared, compiled[name], by_name.get(name, [])))
    for name, raws in sorted(by_name.items()):
        if only and name not in only:
            continue
        owned = [raw for raw in raws if OWNER_TAG in raw.get("tags", [])]
        extras = owned if name not in declared_names else owned[1:]
        for raw in extras:
            why = (
                "no longer declared"
                if name not in declared_names
                else "duplicate of a declared name"
            )
            steps.append(
                Step(
                    "automation",
                    name,
                    Verb.DELETE if prune else Verb.ORPHAN,
                    server_id=UUID(raw["id"]),
                    note=why + ("" if prune else "; sync --prune deletes it"),
                )
            )
    steps.extend(rule_steps(bundle, state.rules, prune=prune, only=only))
    return Plan(steps)


def _root_location(bundle: Bundle) -> Location:
    return Location(bundle.root)


def _owned(raws: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((raw for raw in raws if OWNER_TAG in raw.get("tags", [])), None)


def _blocks_in_scope(bundle: Bundle, only: set[str] | None) -> set[str]:
    if not only:
        return {b.spec.reference for b in bundle.blocks}
    used: set[str] = set()
    for declared in bundle.automations:
        if declared.spec.name in only:
            for _, action in declared.spec.all_actions():
                used |= {name for kind, name in action.references() if kind == "block"}
    return used


def _automation_step(
    declared: Declared[AutomationSpec], desired: AutomationCore, raws: list[dict[str, Any]]
) -> Step:
    name = declared.spec.name
    current = _owned(raws)
    if current is None and raws:
        return Step(
            "automation",
            name,
            Verb.CONFLICT,
            server_id=UUID(raws[0]["id"]),
            note=f"an automation named {name!r} exists without the {OWNER_TAG} tag; "
            "sync will not touch it. Rename the declaration, or add the tag to the "
            "existing automation to let sync adopt it",
            declared=declared,
        )
    if current is None:
        return Step("automation", name, Verb.CREATE, declared=declared)
    new = canonical(desired)
    try:
        old = canonical(from_server(current))
    except ValidationError:
        # A newer server may hold trigger or action types this client cannot
        # read; writing the declaration back is the only way to a known state.
        return Step(
            "automation",
            name,
            Verb.UPDATE,
            changes=[
                Change("(automation)", "(a form this Prefect client cannot read)", "(declared)")
            ],
            server_id=UUID(current["id"]),
            declared=declared,
        )
    if "owner_resource" not in current:
        old.pop("owner_resource", None)
        new.pop("owner_resource", None)
    changes = diff(old, new)
    return Step(
        "automation",
        name,
        Verb.UPDATE if changes else Verb.UNCHANGED,
        changes=changes,
        server_id=UUID(current["id"]),
        declared=declared,
    )


def _block_step(declared: Declared[BlockSpec], state: ServerState) -> Step:
    spec = declared.spec
    existing = state.blocks.get(spec.reference)
    secrets = block_specs.secret_fields(spec)
    desired = block_specs.desired_data(spec)
    if existing is None:
        return Step("block", spec.reference, Verb.CREATE, declared=declared)
    current = block_specs.normalized_server_data(spec, existing.data)
    if current is None:
        changes = [Change("data", "(invalid for this block type)", "(declared data)")]
    else:
        changes = [
            Change(
                f"data.{key}",
                block_specs.MASK if key in secrets else current.get(key),
                block_specs.MASK if key in secrets else desired.get(key),
            )
            for key in sorted(set(current) | set(desired))
            if current.get(key) != desired.get(key)
        ]
    return Step(
        "block",
        spec.reference,
        Verb.UPDATE if changes else Verb.UNCHANGED,
        changes=changes,
        server_id=existing.id,
        declared=declared,
    )
