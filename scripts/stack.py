"""Bring up the local stack: Prefect server (SQLite, 127.0.0.1), automations synced.

    bash scripts/up.sh            # creates .venv on first use, then runs this
    python scripts/stack.py --port 4200

Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from rich.console import Console

from flows.localserver import ServerFailedToStart
from flows.stack import ROOT, Stack
from triggers import SpecError, SyncError
from triggers.report import print_outcome, print_plan, print_problems, print_sync_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=4200, help="server port (default 4200)")
    parser.add_argument("--home", type=Path, default=ROOT / ".janitor", help="state folder")
    parser.add_argument("--path", type=Path, default=ROOT / "automations", help="automations")
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    stack = Stack(args.home, args.port, say=lambda text: console.print(text, markup=False))
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        outcome = stack.start(
            args.path, on_plan=lambda plan: print_plan(console, plan, _api(stack))
        )
        assert stack.server is not None
        print_outcome(console, outcome)
        console.print(f"[bold green]Ready.[/] Prefect UI: {stack.server.ui_url}")
        console.print(f"  export PREFECT_API_URL={stack.server.api_url}")
        console.print("  Ctrl-C stops the stack.")
        while not stopping.wait(0.5):
            pass
    except SpecError as exc:
        print_problems(console, exc.problems)
        return 1
    except SyncError as exc:
        print_sync_error(console, exc)
        return 4
    except ServerFailedToStart as exc:
        console.print(f"[bold red]error:[/] {exc}", markup=False)
        return 4
    finally:
        console.print("stopping...")
        stack.stop()
    return 0


def _api(stack: Stack) -> str:
    assert stack.server is not None, "the plan is made once the server is up"
    return stack.server.api_url


if __name__ == "__main__":
    sys.exit(main())
