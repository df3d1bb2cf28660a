"""Presenting plans and outcomes: a colored plan for people, JSON for machines."""

from __future__ import annotations

import difflib
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from triggers.errors import FixableError, JanitorError, Problem, SpecError
from triggers.sync.compare import Change
from triggers.sync.engine import Mode, SyncOutcome
from triggers.sync.plan import Plan, Step, Verb

_STYLE = {
    Verb.CREATE: ("+", "green", "create"),
    Verb.UPDATE: ("~", "yellow", "update"),
    Verb.UNCHANGED: ("=", "dim", "unchanged"),
    Verb.DELETE: ("-", "red", "delete"),
    Verb.ORPHAN: ("?", "magenta", "orphan"),
    Verb.CONFLICT: ("!", "bold red", "conflict"),
}


def _value(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if value is None:
        text = "(unset)"
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


def print_plan(console: Console, plan: Plan, target: str) -> None:
    console.print(f"[bold]Plan[/] for {escape(target)}")
    if not plan.steps:
        console.print("  (nothing declared in scope)")
    for step in plan.steps:
        mark, style, word = _STYLE[step.verb]
        line = f"  [{style}]{mark} {word:<9}[/] {step.kind:<10} [bold]{escape(step.name)}[/]"
        if step.note:
            line += f"  [dim]{escape(step.note)}[/]"
        console.print(line)
        for change in step.changes:
            console.print("      " + _change(change))
    console.print(summary(plan))


def _change(change: Change) -> str:
    if (
        isinstance(change.old, str)
        and isinstance(change.new, str)
        and ("\n" in change.old + change.new or max(len(change.old), len(change.new)) > 70)
    ):
        return _text_diff(change)
    old, new = _value(change.old), _value(change.new)
    if old == new == "********":
        return f"[yellow]{escape(change.path)}[/]: [dim](secret changed)[/]"
    return f"[yellow]{escape(change.path)}[/]: [red]{escape(old)}[/] → [green]{escape(new)}[/]"


def _text_diff(change: Change) -> str:
    """Long or multi-line strings (payload templates) as a unified diff of their lines."""
    lines = list(
        difflib.unified_diff(
            str(change.old).splitlines(), str(change.new).splitlines(), lineterm="", n=1
        )
    )[2:]
    shown = lines[:20] + ([f"... {len(lines) - 20} more lines"] if len(lines) > 20 else [])
    styled = [
        f"[green]{escape(line)}[/]"
        if line.startswith("+")
        else f"[red]{escape(line)}[/]"
        if line.startswith("-")
        else f"[dim]{escape(line)}[/]"
        for line in shown
    ]
    return f"[yellow]{escape(change.path)}[/]:\n        " + "\n        ".join(styled)


def summary(plan: Plan) -> str:
    parts = [
        f"{plan.count(Verb.CREATE)} to create",
        f"{plan.count(Verb.UPDATE)} to update",
        f"{plan.count(Verb.DELETE)} to delete",
        f"{plan.count(Verb.UNCHANGED)} unchanged",
    ]
    if plan.count(Verb.ORPHAN):
        parts.append(f"[magenta]{plan.count(Verb.ORPHAN)} orphaned[/]")
    if plan.conflicts:
        parts.append(f"[bold red]{len(plan.conflicts)} in conflict[/]")
    return "[bold]Summary:[/] " + ", ".join(parts)


def print_outcome(console: Console, outcome: SyncOutcome) -> None:
    plan = outcome.plan
    stats = f"{outcome.reads} reads, {outcome.writes} writes, {outcome.seconds:.2f}s"
    if plan.conflicts:
        console.print(
            "[bold red]Nothing applied:[/] resolve the conflicts above first "
            f"(rename the declaration, or tag the existing automation). ({stats})"
        )
        return
    if outcome.mode != Mode.APPLY:
        word = "in sync" if plan.in_sync else "drift found"
        console.print(f"[bold]{outcome.mode}:[/] nothing written; {word}. ({stats})")
        return
    if outcome.error is not None:
        done = ", ".join(f"{s.verb} {s.name}" for s in outcome.applied) or "nothing"
        todo = ", ".join(f"{s.verb} {s.name}" for s in outcome.not_applied)
        console.print(f"[bold red]Failed:[/] {escape(str(outcome.error))}")
        console.print(f"  applied before the failure: {escape(done)}")
        console.print(f"  not applied: {escape(todo)}")
        console.print("  re-run sync once the cause is fixed; it converges.")
        return
    counts: dict[Verb, int] = {}
    for step in outcome.applied:
        counts[step.verb] = counts.get(step.verb, 0) + 1
    if not outcome.applied:
        orphans = plan.count(Verb.ORPHAN)
        note = f"; {orphans} orphaned (sync --prune deletes them)" if orphans else ""
        console.print(f"[bold green]In sync:[/] nothing to do{note}. ({stats})")
        return
    done = ", ".join(f"{n} {verb}d" for verb, n in counts.items())
    console.print(f"[bold green]Applied:[/] {done}. ({stats})")


def print_problems(console: Console, problems: list[Problem]) -> None:
    for problem in problems:
        hint = f" [dim]({escape(problem.hint)})[/]" if problem.hint else ""
        console.print(f"[bold]{escape(str(problem.location))}[/]: {escape(problem.message)}{hint}")
    count = len(problems)
    console.print(f"[bold red]{count} problem{'s' if count != 1 else ''}[/]; nothing was written.")


def print_error(console: Console, error: JanitorError) -> None:
    """Any error of the bundle for a person: the problem list, or the cause and the fix."""
    if isinstance(error, SpecError):
        print_problems(console, error.problems)
        return
    if isinstance(error, FixableError):
        console.print(f"[bold red]error:[/] {escape(error.cause)}")
        if error.fix:
            console.print(f"  [dim]fix:[/] {escape(error.fix)}")
        return
    console.print(f"[bold red]error:[/] {escape(str(error))}")


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "kind": step.kind,
        "name": step.name,
        "action": str(step.verb),
        "id": str(step.server_id) if step.server_id else None,
        "note": step.note or None,
        "changes": [{"path": c.path, "old": c.old, "new": c.new} for c in step.changes],
    }


def outcome_json(outcome: SyncOutcome, target: str) -> dict[str, Any]:
    plan = outcome.plan
    return {
        "target": target,
        "mode": str(outcome.mode),
        "in_sync": plan.in_sync,
        "plan": [_step_json(step) for step in plan.steps],
        "summary": {str(verb): plan.count(verb) for verb in Verb},
        "applied": [_step_json(step) for step in outcome.applied],
        "not_applied": [_step_json(step) for step in outcome.not_applied],
        "error": (
            {"cause": outcome.error.cause, "fix": outcome.error.fix} if outcome.error else None
        ),
        "requests": {"reads": outcome.reads, "writes": outcome.writes, **outcome.requests},
        "seconds": round(outcome.seconds, 3),
    }


def problems_json(problems: list[Problem]) -> dict[str, Any]:
    return {
        "error": "invalid declarations",
        "problems": [
            {
                "file": str(p.location.file),
                "line": p.location.line,
                "message": p.message,
                "hint": p.hint or None,
            }
            for p in problems
        ],
    }
