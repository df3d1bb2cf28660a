"""``python -m flows.serve`` in a subprocess, for the local stack and the tests.

In production the same deployments come from ``prefect.yaml`` and a process
worker; here they are served from one process beside the local server.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound

from flows.devstack.processes import log_tail, stop_group
from flows.errors import ServeFailed
from flows.serve import CLEANUP, PROBE


def _client(api_url: str, timeout: float = 30) -> SyncPrefectClient:
    # trust_env=False: a proxy from the environment must not stand between the
    # stack and its own server on loopback.
    return SyncPrefectClient(api_url, httpx_settings={"trust_env": False, "timeout": timeout})


def drop_missed_runs(api_url: str, name: str = PROBE) -> int:
    """Delete the scheduled runs of deployment ``name`` that are already due; how many.

    The scheduler plans an interval deployment an hour ahead. After the runner
    was down, the runs it missed are all due at once, and a runner starts every
    one of them: for the probe, dozens of measurements of the same moment.
    Called before serving starts, so none of them is running.
    """
    with _client(api_url) as client:
        try:
            deployment = client.read_deployment_by_name(name)
        except ObjectNotFound:
            return 0
        due = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                expected_start_time=FlowRunFilterExpectedStartTime(before_=datetime.now(UTC)),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )
        for run in due:
            with suppress(ObjectNotFound):  # gone already is as good
                client.delete_flow_run(run.id)
        return len(due)


class Served:
    """``python -m flows.serve`` in a subprocess, for the local stack and the tests."""

    def __init__(
        self,
        api_url: str,
        log_path: Path,
        environ: dict[str, str],
        command: list[str] | None = None,
    ) -> None:
        self.api_url = api_url
        self.log_path = log_path
        self.environ = environ
        self.command = command or [sys.executable, "-m", "flows.serve"]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Served:
        env = {**self.environ, "PREFECT_API_URL": self.api_url}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command,
                env=env,
                cwd=Path(__file__).resolve().parents[2],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        """The serving process's id, which is also its process group's (None when stopped)."""
        return self._process.pid if self._process is not None else None

    def wait(self, timeout: float = 90.0) -> Served:
        """Until both deployments exist on the server."""
        deadline = time.monotonic() + timeout
        with _client(self.api_url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise ServeFailed(
                        f"serving exited with {self._process.returncode}:\n"
                        + log_tail(self.log_path)
                    )
                try:
                    for name in (CLEANUP, PROBE):
                        client.read_deployment_by_name(name)
                    return self
                except ObjectNotFound:
                    time.sleep(0.5)
        self.stop()
        raise ServeFailed(
            f"the deployments did not appear in {timeout}s:\n{log_tail(self.log_path)}"
        )

    def run_now(self, name: str) -> str:
        """Start one run of a served deployment now (the probe at start-up); its id."""
        with _client(self.api_url) as client:
            deployment = client.read_deployment_by_name(name)
            return str(client.create_flow_run_from_deployment(deployment.id).id)

    def stop(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        # SIGINT lets the runner cancel its flow-run subprocesses and report them.
        stop_group(process, signal.SIGINT, timeout)
