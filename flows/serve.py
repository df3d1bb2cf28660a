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
from typing import TYPE_CHECKING, Any, cast

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

    from flows.cleanup.flow import database_cleanup
    from flows.probe.flow import metric_probe

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


if __name__ == "__main__":
    main()
