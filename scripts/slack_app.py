"""Serve the Slack buttons that approve or reject a waiting database cleanup.

    SLACK_SIGNING_SECRET=... JANITOR_SLACK_APPROVERS=U0123ABC,U0456DEF \\
    PREFECT_API_URL=http://127.0.0.1:4200/api python scripts/slack_app.py --port 3000

Point the Slack app's Interactivity Request URL at https://<host>/slack/actions.
Exit codes: 0 stopped, 5 the environment is incomplete (the message says what to set).
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from flows.errors import SlackSetupError
from flows.slack.app import SlackAppSettings, create_app
from triggers.errors import ExitCode


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="slack_app.py",
        description="Slack interactivity endpoint for database-cleanup approvals. Reads "
        "SLACK_SIGNING_SECRET, JANITOR_SLACK_APPROVERS and PREFECT_API_URL.",
        epilog="exit codes: 0 stopped, 5 setup error",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = SlackAppSettings.from_environ()
    except SlackSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    logging.getLogger("prefect.janitor.slack").setLevel(args.log_level.upper())
    print(
        f"Slack approvals on http://{args.host}:{args.port}/slack/actions for "
        f"{len(settings.approvers)} approver(s); Prefect at {settings.api_url}",
        flush=True,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
