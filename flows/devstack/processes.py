"""Process groups the local stack and the tests start, watch and stop.

The server and the served deployments each run in a process group of their
own (``start_new_session``), so one signal reaches their children too. A
group is named for good by its leader's pid and start time, which is how a
stack killed with SIGKILL has its leftovers stopped by the next one and never
a stranger's processes. Linux only (``/proc``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    """The end of a subprocess's log, for an error that says why it failed."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def stop_group(
    process: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout: float
) -> None:
    """Signal a process started with ``start_new_session`` and its children; kill after
    ``timeout`` if they have not exited."""
    if process is None or process.poll() is not None:
        return
    signal_group(process, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        signal_group(process, signal.SIGKILL)
        process.wait(timeout)


def started_at(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])  # state, starttime


def group_alive(group: int) -> bool:
    """Whether a process of the group still runs (a zombie waiting to be reaped does not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # pgrp, state
            return True
    return False


def stop_recorded_group(group: int) -> None:
    """SIGTERM, then SIGKILL for what is still there after 10 s; returns once all are gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        deadline = time.monotonic() + 10
        while group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not group_alive(group):
            return
