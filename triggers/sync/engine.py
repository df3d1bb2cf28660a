"""The sync engine: load, plan against the server, apply, report what happened.

Nothing is written until everything is loaded, resolved and planned; a
conflict with an automation sync does not own stops the whole apply. When a
write fails midway, the outcome lists what was applied, and because planning
compares the server with the declarations again, a re-run converges.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from uuid import UUID

import httpx
from prefect.events.actions import DoNothing
from prefect.events.schemas.automations import AutomationCore

from triggers.api import Api
from triggers.errors import ServerRejected, SpecError, SyncError
from triggers.load.bundle import Bundle, Declared, load_bundle
from triggers.spec import blocks as block_specs
from triggers.spec.automation import OWNER_TAG, AutomationSpec
from triggers.spec.blocks import BlockSpec
from triggers.sync.plan import Plan, Step, Verb
from triggers.sync.planner import compile_all, make_plan
from triggers.sync.resolve import ServerState, fetch_state
from triggers.sync.rules import apply_rule


class Mode(StrEnum):
    APPLY = "apply"
    DRY_RUN = "dry-run"
    CHECK = "check"


@dataclass
class SyncOutcome:
    """What a sync run planned, wrote, and where it stopped if it failed."""

    plan: Plan
    mode: Mode
    applied: list[Step] = field(default_factory=list)
    failed: Step | None = None
    error: SyncError | None = None
    requests: Counter[str] = field(default_factory=Counter)
    reads: int = 0
    writes: int = 0
    seconds: float = 0.0

    @property
    def not_applied(self) -> list[Step]:
        if self.mode != Mode.APPLY:
            return []
        done = {id(step) for step in self.applied}
        return [s for s in self.plan.steps if s.writes and id(s) not in done]


Say = Callable[[str], None]
"""Where sync reports each step as it goes (a console line, a log)."""


async def sync_automations(
    path: Path,
    *,
    api_url: str | None = None,
    mode: Mode = Mode.APPLY,
    prune: bool = False,
    only: set[str] | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Say | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    display_root: Path | None = None,
) -> SyncOutcome:
    """Make the server match ``path``; raises ``SpecError``/``SyncError`` before writing.

    ``on_plan`` sees the plan before the first write, so a person reads what
    will happen before it happens.
    """
    started = time.perf_counter()
    say = progress or (lambda message: None)
    bundle = load_bundle(path, environ=environ, display_root=display_root)
    automations = _count(len(bundle.automations), "automation")
    say(f"loaded {automations} and {_count(len(bundle.blocks), 'block')}")
    async with Api(api_url) as api:
        try:
            state = await fetch_state(api, bundle, only)
        except (KeyError, TypeError) as exc:
            raise ServerRejected(
                f"{api.url} answered in an unexpected shape ({type(exc).__name__}: {exc})",
                "check that PREFECT_API_URL points at a Prefect 3 server's /api",
            ) from exc
        plan = make_plan(bundle, state, prune=prune, only=only)
        if on_plan is not None:
            on_plan(plan)  # shown before anything is written
        outcome = SyncOutcome(plan, mode)
        if mode == Mode.APPLY and not plan.conflicts:
            await _apply(api, bundle, state, plan, outcome, say)
        outcome.requests = api.requests
        outcome.reads, outcome.writes = api.reads, api.writes
    outcome.seconds = time.perf_counter() - started
    return outcome


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


async def _apply(
    api: Api,
    bundle: Bundle,
    state: ServerState,
    plan: Plan,
    outcome: SyncOutcome,
    say: Say,
) -> None:
    pending: dict[str, dict[str, UUID]] = {"block": {}, "automation": {}}
    todo = [step for step in plan.steps if step.writes]
    blocks = [step for step in todo if step.kind == "block"]
    rules = [step for step in todo if step.kind == "rule"]
    deletes = [step for step in todo if step.kind == "automation" and step.verb == Verb.DELETE]
    writes = [step for step in todo if step.kind == "automation" and step.verb != Verb.DELETE]
    ordered, stubbed = _creation_order(writes)
    try:
        for step in blocks:
            outcome.failed = step
            say(f"{step.verb} block {step.name}")
            assert step.declared is not None
            pending["block"][step.name] = await _save_block(api, step.declared)
            outcome.applied.append(step)
        for step in rules:
            # Rules first: the probe starts measuring before the automation that
            # listens for its firing exists, so nothing is missed at creation.
            outcome.failed = step
            say(f"{step.verb} metric rule {step.name}")
            await apply_rule(api, step)
            outcome.applied.append(step)
        for step in stubbed:
            # Automations that refer to each other (or to themselves) cannot be
            # created in any order; each is first created disabled with no
            # actions, so that every id exists before the full bodies are written.
            outcome.failed = step
            say(f"create automation {step.name} (placeholder until its references exist)")
            step.server_id = await _create(api, _stub(bundle, step.name))
            pending["automation"][step.name] = step.server_id
        for step in ordered:
            outcome.failed = step
            say(f"{step.verb} automation {step.name}")
            desired = compile_all(bundle, state, pending, {step.name})[step.name]
            if step.verb == Verb.CREATE and step not in stubbed:
                step.server_id = await _create(api, desired)
                pending["automation"][step.name] = step.server_id
            else:
                body = desired.model_dump(mode="json")
                # The server's AutomationUpdate forbids owner_resource.
                body.pop("owner_resource", None)
                assert step.server_id is not None
                await api.replace_automation(step.server_id, body)
            outcome.applied.append(step)
        for step in deletes:
            outcome.failed = step
            say(f"delete automation {step.name}")
            assert step.server_id is not None
            await api.delete_automation(step.server_id)
            outcome.applied.append(step)
        outcome.failed = None
    except SyncError as exc:
        outcome.error = exc
    except SpecError as exc:  # a name vanished from the server between plan and apply
        outcome.error = SyncError(
            "; ".join(str(p) for p in exc.problems), "re-run sync; it plans again from scratch"
        )


async def _create(api: Api, automation: AutomationCore) -> UUID:
    return await api.create_automation(automation.model_dump(mode="json"))


def _stub(bundle: Bundle, name: str) -> AutomationCore:
    declared = bundle.automation(name)
    assert declared is not None
    spec = declared.spec
    return AutomationCore(
        name=spec.name,
        description=spec.description,
        enabled=False,
        tags=sorted({*spec.tags, OWNER_TAG}),
        trigger=spec.trigger.compile(),
        actions=[DoNothing()],
    )


def _references(step: Step) -> set[str]:
    if step.declared is None or not isinstance(step.declared.spec, AutomationSpec):
        return set()
    return {
        name
        for _, action in step.declared.spec.all_actions()
        for kind, name in action.references()
        if kind == "automation"
    }


def _creation_order(steps: list[Step]) -> tuple[list[Step], list[Step]]:
    """Dependencies first; what is left (cycles, self-references) needs stubs."""
    new = {step.name for step in steps if step.verb == Verb.CREATE}
    created: set[str] = set()
    ordered: list[Step] = []
    remaining = sorted(steps, key=lambda step: step.name)
    progress = True
    while remaining and progress:
        progress = False
        for step in list(remaining):
            needs = _references(step) & new
            if step.name in needs or not needs <= created:
                continue
            ordered.append(step)
            remaining.remove(step)
            created.add(step.name)
            progress = True
    stubbed = [step for step in remaining if step.verb == Verb.CREATE]
    return ordered + remaining, stubbed


async def _save_block(api: Api, declared: Declared[BlockSpec]) -> UUID:
    block = block_specs.build(declared.spec)
    try:
        return await block.asave(declared.spec.name, overwrite=True, client=api.client)
    except httpx.HTTPStatusError as exc:
        raise api.translate(exc.response, exc.request.method, exc.request.url.path) from exc
    except httpx.HTTPError as exc:
        raise SyncError(
            f"saving block {declared.spec.reference} failed: {type(exc).__name__}",
            "check the server's health and re-run sync",
        ) from exc
    except Exception as exc:  # Prefect's ObjectAlreadyExists and friends
        raise SyncError(
            f"saving block {declared.spec.reference} failed: {type(exc).__name__}",
            "re-run sync; it plans again from what the server has",
        ) from exc
