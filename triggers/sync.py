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

from triggers import blocks as block_specs
from triggers.automation import AutomationSpec, BlockSpec
from triggers.client import Api
from triggers.errors import SyncError
from triggers.loader import Bundle, Declared, load_bundle
from triggers.plan import Plan, Step, Verb, compile_all, make_plan
from triggers.resolve import ServerState, fetch_state


class Mode(StrEnum):
    APPLY = "apply"
    DRY_RUN = "dry-run"
    CHECK = "check"


@dataclass
class Outcome:
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


Progress = Callable[[str], None]


async def sync(
    path: Path,
    *,
    api_url: str | None = None,
    mode: Mode = Mode.APPLY,
    prune: bool = False,
    only: set[str] | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    display_root: Path | None = None,
) -> Outcome:
    """Make the server match ``path``; raises ``SpecError``/``SyncError`` before writing."""
    started = time.perf_counter()
    say = progress or (lambda message: None)
    bundle = load_bundle(path, environ=environ, display_root=display_root)
    say(f"loaded {len(bundle.automations)} automations and {len(bundle.blocks)} blocks")
    async with Api(api_url) as api:
        state = await fetch_state(api, bundle, only)
        plan = make_plan(bundle, state, prune=prune, only=only)
        outcome = Outcome(plan, mode)
        if mode == Mode.APPLY and not plan.conflicts:
            await _apply(api, bundle, state, plan, outcome, only, say)
        outcome.requests = api.requests
        outcome.reads, outcome.writes = api.reads, api.writes
    outcome.seconds = time.perf_counter() - started
    return outcome


async def _apply(
    api: Api,
    bundle: Bundle,
    state: ServerState,
    plan: Plan,
    outcome: Outcome,
    only: set[str] | None,
    say: Progress,
) -> None:
    pending: dict[str, dict[str, UUID]] = {"block": {}, "automation": {}}
    todo = [step for step in plan.steps if step.writes]
    try:
        for step in _ordered(todo):
            outcome.failed = step
            say(f"{step.verb} {step.kind} {step.name}")
            if step.kind == "block":
                assert step.declared is not None
                block_id = await _save_block(api, step.declared)
                pending["block"][step.name] = block_id
            elif step.verb == Verb.DELETE:
                assert step.server_id is not None
                await api.request("DELETE", f"/automations/{step.server_id}")
            else:
                assert step.declared is not None
                desired = compile_all(bundle, state, pending, {step.name})[step.name]
                body = desired.model_dump(mode="json")
                if step.verb == Verb.CREATE:
                    created = await api.request("POST", "/automations/", body)
                    step.server_id = UUID(created["id"])
                    pending["automation"][step.name] = step.server_id
                else:
                    # The server's AutomationUpdate forbids owner_resource; the
                    # owning relation is only set when an automation is created.
                    body.pop("owner_resource", None)
                    await api.request("PUT", f"/automations/{step.server_id}", body)
            outcome.applied.append(step)
        outcome.failed = None
    except SyncError as exc:
        outcome.error = exc


def _ordered(steps: list[Step]) -> list[Step]:
    """Blocks first, then automations others refer to, then the rest, deletes last."""
    referenced: set[str] = set()
    for step in steps:
        if step.kind == "automation" and isinstance(step.declared, Declared):
            spec = step.declared.spec
            if isinstance(spec, AutomationSpec):
                for _, action in spec.all_actions():
                    referenced |= {n for kind, n in action.references() if kind == "automation"}

    def rank(step: Step) -> tuple[int, str]:
        if step.kind == "block":
            return (0, step.name)
        if step.verb == Verb.DELETE:
            return (3, step.name)
        return (1 if step.name in referenced else 2, step.name)

    return sorted(steps, key=rank)


async def _save_block(api: Api, declared: Declared[BlockSpec]) -> UUID:
    block = block_specs.build(declared.spec)
    try:
        return await block.asave(declared.spec.name, overwrite=True, client=api.client)
    except httpx.HTTPStatusError as exc:
        raise api._translate(exc.response, exc.request.method, exc.request.url.path) from exc
    except httpx.HTTPError as exc:
        raise SyncError(f"saving block {declared.spec.reference} failed: {exc!r}") from exc
