"""Create or update the automations declared in automations/ on a Prefect server.

    python scripts/sync.py              plan, then apply
    python scripts/sync.py --dry-run    plan only
    python scripts/sync.py --check      plan only; exit 2 when the server differs
    python scripts/sync.py --render templates/metric.json.j2 --event sample.json
                                        render a template as the server would

Exit codes: 0 done (or in sync), 1 invalid declarations (nothing written),
2 --check found drift, 3 a declared name clashes with an automation sync does
not own (nothing written), 4 the server failed or could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from rich.console import Console

from triggers.errors import ExitCode, FixableError, JanitorError, SpecError
from triggers.render import preview
from triggers.spec import spec_schema_text
from triggers.sync import Mode, sync_automations
from triggers.sync.report import (
    outcome_json,
    print_error,
    print_outcome,
    print_plan,
    problems_json,
)

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "automations"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sync.py",
        description="Sync declarative Prefect automations (YAML) to a Prefect server "
        "($PREFECT_API_URL). Only automations tagged managed-by:prefect-janitor are touched.",
        epilog="exit codes: 0 ok, 1 invalid YAML, 2 drift (--check), 3 name conflict, "
        "4 server error",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    mode.add_argument(
        "--check", action="store_true", help="print the plan; exit 2 if the server differs"
    )
    mode.add_argument("--schema", action="store_true", help="print the spec's JSON Schema")
    mode.add_argument(
        "--render",
        type=Path,
        metavar="TEMPLATE",
        help="render a template with sample events in the server's sandbox, and check it "
        "(valid JSON, Slack's Block Kit limits, escaping); writes nothing",
    )
    parser.add_argument(
        "--event",
        type=Path,
        metavar="FILE",
        help="with --render: JSON file of one event or a list (default: the template's "
        "NAME.sample.json)",
    )
    parser.add_argument(
        "--prune", action="store_true", help="delete owned automations no longer declared"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable plan and result")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="sync only this automation (repeatable)"
    )
    parser.add_argument(
        "--path",
        type=Path,
        default=DEFAULT_PATH,
        help="folder of YAML specs (default: automations/)",
    )
    parser.add_argument("--api-url", help="Prefect API URL (default: $PREFECT_API_URL)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=args.json, highlight=False, log_path=False)
    if args.schema:
        sys.stdout.write(spec_schema_text())
        return ExitCode.OK
    if args.render:
        return render(args.render, args.event, args.path, console)
    mode = Mode.CHECK if args.check else Mode.DRY_RUN if args.dry_run else Mode.APPLY
    target = args.api_url or _api_url()
    progress = None if args.json else (lambda message: console.log(message))
    show_plan = None if args.json else (lambda plan: print_plan(console, plan, target))
    try:
        outcome = asyncio.run(
            sync_automations(
                args.path,
                api_url=args.api_url,
                mode=mode,
                prune=args.prune,
                only=set(args.only) if args.only else None,
                progress=progress,
                on_plan=show_plan,
            )
        )
    except JanitorError as exc:
        if args.json:
            print(json.dumps(_error_json(exc), indent=2))
        print_error(console, exc)
        return exc.exit_code
    if args.json:
        print(json.dumps(outcome_json(outcome, target), indent=2, default=str))
    else:
        print_outcome(console, outcome)
    if outcome.plan.conflicts:
        return ExitCode.CONFLICT
    if outcome.error is not None:
        return outcome.error.exit_code
    if mode == Mode.CHECK and not outcome.plan.in_sync:
        return ExitCode.DRIFT
    return ExitCode.OK


def _error_json(error: JanitorError) -> dict[str, object]:
    if isinstance(error, SpecError):
        return problems_json(error.problems)
    if isinstance(error, FixableError):
        return {"error": error.cause, "fix": error.fix}
    return {"error": str(error)}


def render(template: Path, event: Path | None, root: Path, console: Console) -> int:
    """Print each sample's rendering, then any problem sync would report for it."""
    if not template.is_file() and (root / template).is_file():
        template = root / template
    try:
        result = preview(template, event, root)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return ExitCode.INVALID
    for which, text in result.rendered:
        console.rule(which)
        sys.stdout.write(text + "\n")
    for problem in result.problems:
        console.print(f"[red]problem:[/red] {problem}")
    if not result.problems:
        console.print("[green]ok:[/green] valid, within Slack's limits, user text escaped")
    return ExitCode.INVALID if result.problems else ExitCode.OK


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


if __name__ == "__main__":
    sys.exit(main())
