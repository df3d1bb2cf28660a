"""Serve the bundle's two deployments from one process, without a work pool.

    python -m flows.serve          # PREFECT_API_URL must point at the server

The local stack and the end-to-end tests run this; in production the same
deployments come from ``prefect.yaml`` and a process worker. The cleanup
deployment allows one run at a time and cancels extra ones, so a burst of
triggers gives one cleanup; the probe runs every ``JANITOR_PROBE_INTERVAL``
seconds (60 by default).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import httpx

from flows.localserver import log_tail, stop_group

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

CLEANUP = "database-cleanup/database-cleanup"
PROBE = "metric-probe/metric-probe"
DEFAULT_INTERVAL_SECONDS = 60


def deployments(probe_interval: float | None = None) -> list[RunnerDeployment]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from flows.cleanup import database_cleanup
    from flows.probe import metric_probe

    interval = probe_interval or float(
        os.environ.get("JANITOR_PROBE_INTERVAL", DEFAULT_INTERVAL_SECONDS)
    )
    # to_deployment returns the deployment itself when called outside an event loop.
    found = [
        database_cleanup.to_deployment(
            name="database-cleanup",
            description="Preview, approve and delete old flow runs (prefect-janitor).",
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
            ),
            tags=["prefect-janitor"],
        ),
        metric_probe.to_deployment(
            name="metric-probe",
            description="Measure the metric rules and emit firing/resolved (prefect-janitor).",
            interval=interval,
            tags=["prefect-janitor"],
        ),
    ]
    return [cast("RunnerDeployment", deployment) for deployment in found]


def main() -> None:
    from prefect import serve

    # Stopping must not pause the probe's schedule: the stack starts again unpaused.
    serve(*deployments(), pause_on_shutdown=False, print_starting_message=True)


class ServeFailed(RuntimeError):
    """The serving process exited or its deployments did not appear; holds its log tail."""


class Served:
    """``python -m flows.serve`` in a subprocess, for the local stack and the tests."""

    def __init__(self, api_url: str, log_path: Path, environ: dict[str, str]) -> None:
        self.api_url = api_url
        self.log_path = log_path
        self.environ = environ
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Served:
        env = {**self.environ, "PREFECT_API_URL": self.api_url}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "flows.serve"],
                env=env,
                cwd=Path(__file__).resolve().parent.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def wait(self, timeout: float = 90.0) -> Served:
        """Until both deployments exist on the server."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.api_url, timeout=5, trust_env=False) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise ServeFailed(
                        f"serving exited with {self._process.returncode}:\n"
                        + log_tail(self.log_path)
                    )
                found = [
                    client.get(f"/deployments/name/{name}").status_code for name in (CLEANUP, PROBE)
                ]
                if found == [200, 200]:
                    return self
                time.sleep(0.5)
        self.stop()
        raise ServeFailed(
            f"the deployments did not appear in {timeout}s:\n{log_tail(self.log_path)}"
        )

    def run_now(self, name: str) -> str:
        """Start one run of a served deployment now (the probe at start-up); its id."""
        with httpx.Client(base_url=self.api_url, timeout=30, trust_env=False) as client:
            deployment = client.get(f"/deployments/name/{name}")
            deployment.raise_for_status()
            created = client.post(
                f"/deployments/{deployment.json()['id']}/create_flow_run", json={}
            )
            created.raise_for_status()
            return str(created.json()["id"])

    def stop(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        # SIGINT lets the runner cancel its flow-run subprocesses and report them.
        stop_group(process, signal.SIGINT, timeout)


if __name__ == "__main__":
    main()
