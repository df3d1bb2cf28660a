"""Answer a database cleanup that waits for approval, from a terminal.

    python scripts/approve.py                      list the cleanups waiting for an answer
    python scripts/approve.py RUN_ID               approve one
    python scripts/approve.py RUN_ID --reject --notes "keep them for the audit"

It gives the same form the Prefect UI shows (approve, notes, approver) to the
waiting run, after the same checks as the Slack button. Exit codes: 0 answered
(or listed), 1 refused (unknown run, not a cleanup, not waiting), 4 the server
could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from uuid import UUID

import httpx
from prefect.settings import PREFECT_API_URL
from rich.console import Console

from flows.cleanup.approval import ApprovalForm, answer, waiting
from flows.errors import AnswerRefused
from triggers.api import Api
from triggers.errors import ExitCode, JanitorError, ServerUnreachable
from triggers.sync.report import print_error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="approve.py",
        description="Approve or reject a waiting database cleanup ($PREFECT_API_URL).",
        epilog="exit codes: 0 answered or listed, 1 refused, 4 server error",
    )
    parser.add_argument("run_id", nargs="?", type=UUID, help="the paused cleanup's flow run id")
    parser.add_argument("--reject", action="store_true", help="refuse the deletion")
    parser.add_argument("--notes", default="", help="why; shown in Slack and in the events")
    parser.add_argument(
        "--approver", default=None, help="who answers (default: your user name, from a terminal)"
    )
    parser.add_argument("--api-url", help="override $PREFECT_API_URL")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    async with Api(args.api_url) as api:
        if args.run_id is None:
            found = await waiting(api.client)
            if not found:
                print(f"no cleanup is waiting for approval on {api.url}")
            for flow_run in found:
                since = flow_run.state.timestamp if flow_run.state else None
                when = f"{since:%Y-%m-%d %H:%M:%S %Z}" if since else "(no state time)"
                print(f"{flow_run.id}  {flow_run.name}  waiting since {when}")
            return ExitCode.OK
        verb = "rejected" if args.reject else "approved"
        approver = args.approver or f"{getpass.getuser()} (terminal)"
        form = ApprovalForm(approve=not args.reject, notes=args.notes, approver=approver)
        flow_run = await answer(api.client, args.run_id, form)
        print(f"{verb} cleanup {flow_run.name} ({flow_run.id}) as {approver}")
        return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.api_url or PREFECT_API_URL.value() or "(PREFECT_API_URL is not set)"
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        try:
            return asyncio.run(run(args))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(
                f"cannot reach the Prefect API at {url} ({type(exc).__name__})",
                "start the server (bash scripts/up.sh, or prefect server start) "
                "or fix PREFECT_API_URL",
            ) from exc
        except httpx.HTTPError as exc:
            raise ServerUnreachable(
                f"the Prefect API at {url} failed ({type(exc).__name__}: {exc})", "retry"
            ) from exc
    except AnswerRefused as refused:
        console.print(f"refused: {refused.reason}", markup=False)
        return refused.exit_code
    except JanitorError as exc:
        print_error(console, exc)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
