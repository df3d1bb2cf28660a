"""The local stack's folder: one stack at a time, and what a killed one left running.

A stack keeps its SQLite database, logs and a record of the process groups it
started in one folder (``.janitor/`` by default). Two servers on one SQLite
file would each see half of the other's writes, so the folder is locked while
a stack uses it; a stack killed with SIGKILL cannot stop its server, so the
next one reads the record and does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from triggers.errors import JanitorError

RECORD = "stack.json"
LOCK = "stack.lock"


class StackError(JanitorError):
    """The stack cannot start here; the message says what to do."""


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

    @property
    def locked(self) -> bool:
        return self._lock is not None

    def remember(self, groups: Iterable[int]) -> None:
        """Write down the process groups started, for the next start if this one is killed."""
        (self.path / RECORD).write_text(json.dumps({"process_groups": list(groups)}))

    def stop_leftovers(self, say: Callable[[str], None]) -> None:
        """Stop the server and served deployments of a stack that was killed, not stopped."""
        record = self.path / RECORD
        try:
            groups = json.loads(record.read_text()).get("process_groups", [])
        except (OSError, ValueError):
            return
        for group in groups:
            command = command_line(group)
            if "prefect" not in command and "flows.serve" not in command:
                continue  # gone, or the id now belongs to something else
            say(f"stopping what an earlier stack left running (process group {group})")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while command_line(group) and time.monotonic() < deadline:
                time.sleep(0.1)
        record.unlink()

    def reset(self) -> None:
        """Everything but the lock goes: the demo starts from nothing each time."""
        for child in self.path.iterdir():
            if child.name == LOCK:
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def release(self) -> None:
        """After a clean stop: the record goes, and the lock is released."""
        if self._lock is None:
            return  # never this stack's: the record belongs to the one that holds it
        with contextlib.suppress(FileNotFoundError):
            (self.path / RECORD).unlink()
        self._lock.close()
        self._lock = None


def command_line(pid: int) -> str:
    """The process's command line; empty when it is gone or a zombie."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise StackError(
                f"something already listens on 127.0.0.1:{port} (another Prefect server?); "
                f"stop it, or pick another port: bash scripts/up.sh --port {port + 100}"
            )
