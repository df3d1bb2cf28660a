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

import httpx
from rich.console import Console
from rich.markup import escape

from flows.localserver import LocalServer, ServerFailedToStart
from flows.serve import ServeFailed
from flows.stack import ROOT, Stack
from flows.stackfolder import StackError
from triggers import SpecError, SyncError
from triggers.report import print_outcome, print_plan, print_problems, print_sync_error

EXIT_OK, EXIT_INVALID, EXIT_SERVER, EXIT_SETUP = 0, 1, 4, 5


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
            return EXIT_SERVER
        console.print(f"[bold green]Ready.[/] Prefect UI: {_server(stack).ui_url}")
        console.print(f"  export PREFECT_API_URL={_server(stack).api_url}")
        console.print("  Ctrl-C stops the stack.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return EXIT_OK
    except SpecError as exc:
        print_problems(console, exc.problems)
        return EXIT_INVALID
    except SyncError as exc:
        print_sync_error(console, exc)
        return EXIT_SERVER
    except (ServerFailedToStart, ServeFailed) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_SERVER
    except httpx.HTTPError as exc:
        console.print(f"[bold red]error:[/] the local server failed: {escape(str(exc))}")
        return EXIT_SERVER
    except StackError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return EXIT_SETUP
    except OSError as exc:  # a folder or port this user cannot use
        console.print(f"[bold red]error:[/] {escape(f'{type(exc).__name__}: {exc}')}")
        return EXIT_SETUP
    finally:
        interrupt.received = True  # from here on, signals are ignored
        if stack.stop():
            console.print("stopped.")


if __name__ == "__main__":
    sys.exit(main())
