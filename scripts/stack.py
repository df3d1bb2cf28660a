"""Bring up the local stack: Prefect server (SQLite, 127.0.0.1), deployments served,
automations synced.

    bash scripts/up.sh            # creates .venv on first use, then runs this
    bash scripts/up.sh --demo     # a throwaway server with old history: watch a cleanup happen
    python scripts/stack.py --port 4200

Ctrl-C stops everything it started. Exit codes: 0 stopped, 1 invalid
automations, 4 the server or sync failed, 5 the stack cannot start here
(folder taken, port taken, no permission).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from rich.console import Console

from flows.devstack.server import LocalServer
from flows.devstack.stack import ROOT, Stack
from triggers.errors import ExitCode, JanitorError
from triggers.sync.report import print_error, print_outcome, print_plan


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="up.sh", description=(__doc__ or "").split("\n\n", 1)[0].replace("\n", " ")
    )
    parser.add_argument("--port", type=int, default=4200, help="server port (default 4200)")
    parser.add_argument("--home", type=Path, default=ROOT / ".janitor", help="state folder")
    parser.add_argument("--path", type=Path, default=ROOT / "automations", help="automations")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run a throwaway server (in HOME/demo, reset at each start) seeded with old "
        "history, so a metric trigger fires and a cleanup asks for approval within minutes",
    )
    return parser.parse_args(argv)


class _Interrupt:
    """Ctrl-C and SIGTERM stop the stack once: a second one while it stops is ignored,
    so it cannot cut the stopping short and leave the server running."""

    received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if not self.received:
            self.received = True
            raise KeyboardInterrupt


def _server(stack: Stack) -> LocalServer:
    assert stack.server is not None, "the plan is made, and Ready said, once the server is up"
    return stack.server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)  # URLs stay whole
    home = args.home / "demo" if args.demo else args.home
    stack = Stack(
        home, args.port, say=lambda text: console.print(text, markup=False), demo=args.demo
    )
    # SIGTERM stops the stack like Ctrl-C does, also while it is still starting.
    interrupt = _Interrupt()
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        outcome = stack.start(
            args.path, on_plan=lambda plan: print_plan(console, plan, _server(stack).api_url)
        )
        print_outcome(console, outcome)
        if outcome.error is not None:
            return outcome.error.exit_code
        console.print(f"[bold green]Ready.[/] Prefect UI: {_server(stack).ui_url}")
        console.print(f"  export PREFECT_API_URL={_server(stack).api_url}")
        console.print("  Ctrl-C stops the stack.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return ExitCode.OK
    except JanitorError as exc:
        print_error(console, exc)
        return exc.exit_code
    finally:
        interrupt.received = True  # from here on, signals are ignored
        if stack.stop():
            console.print("stopped.")


if __name__ == "__main__":
    sys.exit(main())
