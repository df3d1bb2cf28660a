"""The local stack's folder: one stack at a time, and what a killed one left running.

A stack keeps its SQLite database, logs and a record of the process groups it
started in one folder (``.janitor/`` by default). Two servers on one SQLite
file would each see half of the other's writes, so the folder is locked while
a stack uses it; a stack killed with SIGKILL cannot stop its server, so the
next one reads the record and does. Both rely on Linux (``fcntl`` locks and
``/proc``); elsewhere a leftover server has to be stopped by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from flows.devstack.processes import started_at, stop_recorded_group
from flows.errors import StackError

RECORD = "stack.json"
LOCK = "stack.lock"
DEMO_MARKER = "demo.marker"


class StackFolder:
    """The folder, locked for one stack from ``lock()`` until ``release()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[str] | None = None

    def lock(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        handle = (self.path / LOCK).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise StackError(
                f"another local stack is running from {self.path}; stop it (Ctrl-C in its "
                "terminal) first, or give this one its own folder with --home"
            ) from None
        self._lock = handle

    def remember(self, pids: Iterable[int]) -> None:
        """Write down the process groups started (leader pid and start time, which together
        name a process for good), for the next start if this one is killed."""
        groups = [{"pid": pid, "started": started_at(pid)} for pid in pids]
        partial = self.path / f"{RECORD}.partial"
        partial.write_text(json.dumps({"process_groups": groups}))
        partial.replace(self.path / RECORD)  # never half written, whatever interrupts it

    def stop_leftovers(self, say: Callable[[str], None]) -> bool:
        """Stop the server and served deployments of a stack that was killed, not stopped;
        whether there were any.

        Only a group whose leader is the very process recorded (same pid, same start
        time, still leading its group) is stopped: a pid the system gave to another
        program since is left alone.
        """
        record = self.path / RECORD
        try:
            groups = json.loads(record.read_text()).get("process_groups", [])
        except (OSError, ValueError):
            groups = []
        stopped = False
        for group in groups:
            pid, started = group.get("pid"), group.get("started")
            if not isinstance(pid, int) or started is None or started_at(pid) != started:
                continue  # gone, or the pid now belongs to something else
            try:
                if os.getpgid(pid) != pid:
                    continue
            except ProcessLookupError:
                continue
            say(f"stopping what an earlier stack left running (process group {pid})")
            stopped = True
            try:
                stop_recorded_group(pid)
            except PermissionError:
                raise StackError(
                    f"process group {pid}, left by an earlier stack in {self.path}, is not "
                    "yours to stop; stop it as its owner, then start again"
                ) from None
        record.unlink(missing_ok=True)
        return stopped

    def reset(self) -> None:
        """Everything but the lock goes: the demo starts from nothing each time.

        Only a folder the demo made (it leaves a marker) or an empty one is reset, so a
        mistaken ``--home`` cannot empty a folder of someone else's.
        """
        children = [child for child in self.path.iterdir() if child.name != LOCK]
        if children and not (self.path / DEMO_MARKER).exists():
            raise StackError(
                f"{self.path} is not empty and was not made by --demo; the demo resets its "
                "folder at each start, so give it an empty or new one with --home"
            )
        for child in children:
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
        (self.path / DEMO_MARKER).write_text("made by prefect-janitor's --demo; reset at start\n")

    def release(self) -> None:
        """After a clean stop: the record goes, and the lock is released."""
        if self._lock is None:
            return  # never this stack's: the record belongs to the one that holds it
        with contextlib.suppress(FileNotFoundError):
            (self.path / RECORD).unlink()
        self._lock.close()
        self._lock = None


def check_port(port: int, wait: float = 0.0) -> None:
    """Refuse a port something listens on; ``wait`` gives a server just stopped time to
    let go of it."""
    deadline = time.monotonic() + wait
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return
        if time.monotonic() >= deadline:
            raise StackError(
                f"something already listens on 127.0.0.1:{port} (another Prefect server?); "
                f"stop it, or pick another port: bash scripts/up.sh --port {port + 100}"
            )
        time.sleep(0.2)
