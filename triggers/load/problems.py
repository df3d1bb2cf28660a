"""Turning pydantic validation errors into `file:line: message (fix)` problems."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from triggers.errors import PathKey, Problem
from triggers.hints import did_you_mean
from triggers.load.source import Document


def dotted(path: PathKey) -> str:
    """``("trigger", "triggers", 1, "expect")`` as ``trigger.triggers[1].expect``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@cache
def _field_vocabulary() -> frozenset[str]:
    from triggers.spec.action import ActionSpec
    from triggers.spec.automation import AutomationSpec
    from triggers.spec.blocks import BlockSpec
    from triggers.spec.trigger import TriggerSpec

    names: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation in seen:
                return
            seen.add(annotation)
            for field_name, info in annotation.model_fields.items():
                names.add(field_name)
                visit(info.annotation)
            return
        for arg in getattr(annotation, "__args__", ()) or ():
            visit(arg)
        for meta in getattr(annotation, "__metadata__", ()) or ():
            visit(meta)
        origin = getattr(annotation, "__origin__", None)
        if origin is not None:
            visit(origin)

    for root in (AutomationSpec, BlockSpec, TriggerSpec, ActionSpec):
        visit(root)
    return frozenset(names)


def from_validation(
    error: ValidationError, document: Document, prefix: PathKey = ()
) -> list[Problem]:
    """One problem per distinct place, with the line the value sits on.

    ``prefix`` places errors of a sub-model (a compiled trigger or action)
    under the part of the document it came from.
    """
    problems: dict[PathKey, Problem] = {}
    for item in error.errors(include_url=False):
        loc = (*prefix, *item["loc"])
        path = document.walk(loc)
        kind = item["type"]
        ctx = item.get("ctx") or {}
        # Values from the environment may be secrets: describe, never echo them.
        shown_input = (
            "(from the environment)" if document.from_environment(path) else item.get("input")
        )
        message, hint = _describe(kind, item["msg"], loc, path, ctx, shown_input)
        where = dotted(path)
        text = f"{where}: {message}" if where else message
        if path not in problems:
            problems[path] = Problem(document.locate(path), text, hint)
    return list(problems.values())


def _describe(
    kind: str,
    msg: str,
    loc: tuple[Any, ...],
    path: PathKey,
    ctx: dict[str, Any],
    value: Any,
) -> tuple[str, str]:
    last = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        return f"unknown field {last!r}", did_you_mean(
            str(last), set(_field_vocabulary())
        ) or "remove it; see automations/schema.json for the allowed fields"
    if kind == "missing":
        return f"missing required field {last!r}", f"add `{last}: ...`"
    if kind == "unknown_trigger_type":
        tag = value.get("type") if isinstance(value, dict) else value
        hint = did_you_mean(str(tag), {"event", "compound", "sequence"})
        return f"unknown trigger type {tag!r}", hint or "use event, compound or sequence"
    if kind == "unknown_document_kind":
        tag = value.get("kind") if isinstance(value, dict) else value
        return f"unknown kind {tag!r}", "use kind: automation (the default) or kind: block"
    if kind == "union_tag_invalid":
        tag = ctx.get("tag", "")
        expected = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        hint = did_you_mean(str(tag), expected) or "use one of: " + ", ".join(expected)
        return f"unknown {ctx.get('discriminator', 'type').strip(chr(39))} {tag!r}", hint
    if kind == "union_tag_not_found":
        return "missing `type`", "add `type:` with the action type, e.g. type: run-deployment"
    if kind in {"value_error", "assertion_error"}:
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, "), ""
    if kind == "string_pattern_mismatch" and isinstance(value, str):
        field = str(path[-1]) if path else ""
        return f"{value!r} is not in the expected form", _pattern_hint(field)
    shown = value if value == "(from the environment)" else repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    got = f" (got {shown})" if not isinstance(value, dict | list) else ""
    return f"{msg[0].lower()}{msg[1:]}{got}", ""


def _pattern_hint(field: str) -> str:
    return {
        "deployment": "write flow-name/deployment-name",
        "work_queue": "write pool-name/queue-name",
        "block": "write block-type-slug/block-name, e.g. webhook/janitor-slack",
        "name": "use lowercase letters, digits and dashes",
        "type": "use the block type slug, e.g. webhook",
    }.get(field, "see automations/schema.json")
