"""Serve the bundle's two deployments from one process, without a work pool.

    python -m flows.serve          # PREFECT_API_URL must point at the server

The local stack and the end-to-end tests run this; in production the same
deployments come from ``prefect.yaml`` and a process worker. The cleanup
deployment allows one run at a time and cancels extra ones, so a burst of
triggers gives one cleanup; the probe runs every ``JANITOR_PROBE_INTERVAL``
seconds (60 by default). The runner looks for runs to start every
``POLL_SECONDS`` (Prefect's default is 10 s; ``PREFECT_RUNNER_POLL_FREQUENCY``
still wins when set), so a cleanup starts within seconds of its trigger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx

from flows.localserver import log_tail, request, stop_group

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

CLEANUP = "database-cleanup/database-cleanup"
PROBE = "metric-probe/metric-probe"
DEFAULT_INTERVAL_SECONDS = 60
POLL_SECONDS = 1


def deployments(
    probe_interval: float | None = None, cleanup_entrypoint: str | None = None
) -> list[RunnerDeployment]:
    """The two deployments; ``cleanup_entrypoint`` serves a flow that wraps the cleanup
    (``path/to/file.py:function``, relative to this project) under the same name."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import RunnerDeployment

    from flows.cleanup import database_cleanup
    from flows.probe import metric_probe

    interval = probe_interval or float(
        os.environ.get("JANITOR_PROBE_INTERVAL", DEFAULT_INTERVAL_SECONDS)
    )
    cleanup: dict[str, Any] = {
        "name": "database-cleanup",
        "description": "Preview, approve and delete old flow runs (prefect-janitor).",
        "concurrency_limit": ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        "tags": ["prefect-janitor"],
    }
    # to_deployment returns the deployment itself when called outside an event loop.
    found = [
        RunnerDeployment.from_entrypoint(cleanup_entrypoint, **cleanup)
        if cleanup_entrypoint
        else database_cleanup.to_deployment(**cleanup),
        metric_probe.to_deployment(
            name="metric-probe",
            description="Measure the metric rules and emit firing/resolved (prefect-janitor).",
            interval=interval,
            tags=["prefect-janitor"],
        ),
    ]
    return [cast("RunnerDeployment", deployment) for deployment in found]


def main(argv: list[str] | None = None) -> None:
    import argparse

    from prefect import serve
    from prefect.settings import get_current_settings

    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__)
    parser.add_argument(
        "--cleanup-entrypoint",
        metavar="PATH:FUNCTION",
        help="serve a flow that wraps the cleanup, under the same deployment name",
    )
    cleanup_entrypoint = parser.parse_args(argv).cleanup_entrypoint

    poll = POLL_SECONDS
    if "PREFECT_RUNNER_POLL_FREQUENCY" in os.environ:
        poll = get_current_settings().runner.poll_frequency
    # Stopping must not pause the probe's schedule: the stack starts again unpaused.
    serve(
        *deployments(cleanup_entrypoint=cleanup_entrypoint),
        pause_on_shutdown=False,
        print_starting_message=True,
        query_seconds=poll,
    )


def drop_missed_runs(api_url: str, name: str = PROBE) -> int:
    """Delete the scheduled runs of deployment ``name`` that are already due; how many.

    The scheduler plans an interval deployment an hour ahead. After the runner
    was down, the runs it missed are all due at once, and a runner starts every
    one of them: for the probe, dozens of measurements of the same moment.
    Called before serving starts, so none of them is running.
    """
    now = time.time()
    with httpx.Client(base_url=api_url, timeout=30, trust_env=False) as client:
        deployment = request(client, "GET", f"/deployments/name/{name}")
        if deployment.status_code == 404:
            return 0
        deployment.raise_for_status()
        due = request(
            client,
            "POST",
            "/flow_runs/filter",
            {
                "flow_runs": {
                    "deployment_id": {"any_": [deployment.json()["id"]]},
                    "state": {"type": {"any_": ["SCHEDULED"]}},
                    "expected_start_time": {
                        "before_": datetime.fromtimestamp(now, UTC).isoformat()
                    },
                },
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": 200,
            },
        )
        due.raise_for_status()
        dropped = 0
        for run in due.json():
            deleted = request(client, "DELETE", f"/flow_runs/{run['id']}")
            if deleted.status_code != 404:  # gone already is as good
                deleted.raise_for_status()
            dropped += 1
        return dropped


class ServeFailed(RuntimeError):
    """The serving process exited or its deployments did not appear; holds its log tail."""


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
                cwd=Path(__file__).resolve().parent.parent,
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
            deployment = request(client, "GET", f"/deployments/name/{name}")
            deployment.raise_for_status()
            path = f"/deployments/{deployment.json()['id']}/create_flow_run"
            created = request(client, "POST", path, {})
            created.raise_for_status()
            return str(created.json()["id"])

    def stop(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        # SIGINT lets the runner cancel its flow-run subprocesses and report them.
        stop_group(process, signal.SIGINT, timeout)


if __name__ == "__main__":
    main()
