"""A Prefect server in a subprocess on loopback: for the local stack and the tests.

A real ``prefect server start`` runs every service (triggers, actions,
proactive evaluation), which the in-process test harness does not, so what
works here works against a self-hosted server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from flows.devstack.processes import free_port, log_tail, signal_group, stop_group
from flows.errors import ServerFailedToStart


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path.resolve()}"


def request(
    client: httpx.Client, method: str, path: str, json: object = None, attempts: int = 8
) -> httpx.Response:
    """One API call that waits out a busy server: SQLite-backed Prefect answers 503
    while its own services write. The last answer is returned, whatever its status."""
    for attempt in range(attempts):
        response = client.request(method, path, json=json)
        if response.status_code not in (429, 503):
            break
        time.sleep(min(0.25 * 2**attempt, 5.0))
    return response


class LocalServer:
    """Start, wait for and stop one Prefect server bound to 127.0.0.1."""

    def __init__(
        self,
        home: Path,
        database_url: str,
        *,
        port: int | None = None,
        ui: bool = False,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.database_url = database_url
        self.port = port or free_port()
        self.ui = ui
        self.extra_env = extra_env or {}
        self.log_path = home / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id, which is also its process group's (None when stopped)."""
        return self._process.pid if self._process is not None else None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.database_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_UI_ENABLED": "true" if self.ui else "false",
                "PREFECT_UI_ENABLED": "true" if self.ui else "false",
                "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
                "PREFECT_API_URL": self.api_url,
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> LocalServer:
        self.home.mkdir(parents=True, exist_ok=True)
        prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        return self

    def wait(self, timeout: float = 90.0) -> LocalServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                signal_group(self._process, signal.SIGKILL)  # its services, if any remain
                raise ServerFailedToStart(
                    f"prefect server exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                # trust_env=False: a proxy from the environment must not stand
                # between us and a server on loopback.
                health = httpx.get(f"{self.api_url}/health", timeout=2, trust_env=False)
                if health.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise ServerFailedToStart(
            f"prefect server did not answer in {timeout}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        # The server runs its services in child processes; signal the whole group.
        stop_group(process, signal.SIGTERM, timeout)

    def __enter__(self) -> LocalServer:
        return self.start().wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
