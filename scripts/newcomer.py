"""Follow the README as a newcomer would, on a fresh clone: CI runs this (.ci/run).

    python3 scripts/newcomer.py [--keep] [PYTEST_ARGS...]

Clones this repository's last commit into a temporary folder, then runs the
two commands of the README's "Two commands" section there, as written:
the first (the local stack) until it says Ready, checks that it answers
(API, UI, deployments, synced automations) and stops it with Ctrl-C (SIGINT
to its process group, as a terminal sends it), checking that nothing it
started is left; then the second (install and test), whose exit code is this
script's. Extra arguments go to the test command. Needs only Python 3.11+,
git and the network to PyPI; the fresh virtual environment is the clone's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 4200
READY_TIMEOUT = 900.0  # the first start installs everything
STOP_TIMEOUT = 60.0
OWNER_TAG = "managed-by:prefect-janitor"


class Failed(Exception):
    """A step of the README did not do what the README says."""


def say(message: str) -> None:
    print(f"[newcomer] {message}", flush=True)


def readme_commands(readme: Path) -> tuple[str, str]:
    """The two shell commands of the README's "Two commands" section: stack, then tests."""
    text = readme.read_text()
    section = re.search(r"^## Two commands\n(.*?)(?=^##)", text, re.M | re.S)
    if section is None:
        raise Failed(f"{readme}: no '## Two commands' section")
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", section.group(1), re.S)
    commands = [block.strip() for block in blocks]
    if len(commands) != 2 or any("\n" in command for command in commands):
        raise Failed(f"{readme}: expected two one-line bash blocks, found {commands}")
    return commands[0], commands[1]


def fresh_copy(target: Path) -> None:
    """A clone of the last commit; uncommitted changes are not part of what is checked."""
    if (ROOT / ".git").exists():
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True
        ).stdout
        if dirty.strip():
            say("note: uncommitted changes are not checked; the clone has the last commit")
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
        return
    ignore = shutil.ignore_patterns(".venv", ".janitor", "__pycache__", "*.egg-info", ".*_cache")
    shutil.copytree(ROOT, target, ignore=ignore)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, body: object = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_until_ready(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    shown = 0
    while time.monotonic() < deadline:
        lines = log.read_text(errors="replace").splitlines()
        for line in lines[shown:]:
            print(f"    | {line}", flush=True)
        shown = len(lines)
        if any(line.startswith("Ready.") for line in lines):
            return
        if process.poll() is not None:
            raise Failed(f"the stack exited with {process.returncode} before it was ready")
        time.sleep(1)
    raise Failed(f"the stack was not ready within {READY_TIMEOUT:.0f} s")


def check_answers(port: int) -> None:
    api = f"http://127.0.0.1:{port}/api"
    checks = {
        "API health": get(f"{api}/health"),
        "UI": get(f"http://127.0.0.1:{port}/"),
        "cleanup deployment": get(f"{api}/deployments/name/database-cleanup/database-cleanup"),
        "probe deployment": get(f"{api}/deployments/name/metric-probe/metric-probe"),
        "automations": get(f"{api}/automations/filter", {}),
    }
    for what, (status, _) in checks.items():
        if status != 200:
            raise Failed(f"{what} answered {status}")
    if checks["API health"][1].strip() != "true":
        raise Failed(f"API health answered {checks['API health'][1]!r}")
    if "<html" not in checks["UI"][1].lower():
        raise Failed("the UI did not answer with a page")
    owned = [a for a in json.loads(checks["automations"][1]) if OWNER_TAG in a["tags"]]
    if not owned:
        raise Failed("no automation carries the managed-by:prefect-janitor tag: sync did not run")
    say(f"the stack answers on port {port}: API, UI, 2 deployments, {len(owned)} automations")


def leftovers(folder: Path) -> list[str]:
    """Processes still running from the clone (server, served deployments, flow runs)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        inside = str(folder) in command or Path(cwd).is_relative_to(folder)
        if inside and entry.name != str(os.getpid()):
            found.append(f"{entry.name}: {command[:120]}")
    return found


def run_stack(clone: Path, command: str) -> None:
    port = DEFAULT_PORT
    arguments = shlex.split(command)
    if not port_free(port):
        port = free_port()
        arguments += ["--port", str(port)]  # the README's troubleshooting says so
        say(f"port {DEFAULT_PORT} is taken here; adding --port {port}")
    log = clone / "stack.log"
    say(f"running the README's first command: {shlex.join(arguments)}")
    with log.open("wb") as out:
        process = subprocess.Popen(
            arguments, cwd=clone, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_ready(process, log)
        check_answers(port)
        say("pressing Ctrl-C")
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(STOP_TIMEOUT)
        tail = log.read_text(errors="replace").splitlines()[-3:]
        for line in tail:
            print(f"    | {line}", flush=True)
        if code != 0:
            raise Failed(f"the stack exited with {code} after Ctrl-C")
        if not port_free(port):
            raise Failed(f"port {port} still answers after the stack stopped")
        time.sleep(1)
        if left := leftovers(clone):
            raise Failed("processes left after Ctrl-C:\n  " + "\n  ".join(left))
        say("the stack stopped cleanly and left nothing running")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)
        kill_leftovers(clone)  # a failed check must not leave a server on the port


def kill_leftovers(folder: Path) -> None:
    """SIGKILL every process still running from ``folder`` (they die with its removal)."""
    for line in leftovers(folder):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    test_args = [a for a in argv if a != "--keep"]
    work = Path(tempfile.mkdtemp(prefix="janitor-newcomer-"))
    clone = work / "prefect-janitor"
    started = time.monotonic()
    try:
        say(f"cloning into {clone}")
        fresh_copy(clone)
        up, test = readme_commands(clone / "README.md")  # the README of what is checked
        if (clone / ".venv").exists():
            raise Failed("the clone already has a .venv; it must start without one")
        run_stack(clone, up)
        arguments = [*shlex.split(test), *test_args]
        say(f"running the README's second command: {shlex.join(arguments)}")
        code = subprocess.run(arguments, cwd=clone).returncode
        say(f"the test command exited with {code} ({time.monotonic() - started:.0f} s in all)")
        return code
    except (Failed, subprocess.SubprocessError, OSError) as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        if keep:
            say(f"kept {clone}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
