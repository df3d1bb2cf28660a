"""A cleanup killed half-way through its deletion, then run again, converges."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

from flows.cleanup.config import RetentionConfig
from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history
from helpers.cleanup import RunCleanup, release_slot, surviving

pytestmark = pytest.mark.anyio

RUNS = 80
CLEANUP = """
import asyncio, sys
from flows.cleanup.flow import database_cleanup
from flows.cleanup.config import RetentionConfig
asyncio.run(database_cleanup(RetentionConfig.model_validate_json(sys.argv[1])))
"""


async def count_runs(api_url: str, flow_name: str) -> int:
    async with PrefectClient(api_url) as client:
        return await client.count_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name]))
        )


async def test_killed_mid_deletion_then_run_again_converges(
    server: LocalServer, path: str, run_cleanup: RunCleanup, flow_name: str, tmp_path: Path
) -> None:
    specs = [RunSpec(flow_name, ago=timedelta(days=40), logs=1) for _ in range(RUNS)]
    specs += [RunSpec(flow_name, "Running", ago=timedelta(days=40))]
    specs += [RunSpec(flow_name, ago=timedelta(days=40), tags=["keep"])]
    ids = await make_history(server.api_url, server.database_url, specs)
    config = RetentionConfig(
        flows=[flow_name],
        approval="none",
        batch_size=1,
        deletion="auto" if path == "database" else "api",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=server.api_url, PREFECT_HOME=str(tmp_path))
    if path == "database":
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = server.database_url
    first = subprocess.Popen(
        [sys.executable, "-c", CLEANUP, config.model_dump_json()],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while await count_runs(server.api_url, flow_name) > len(specs) - 5:
            assert first.poll() is None, "the first cleanup ended before it could be killed"
            assert time.monotonic() < deadline, "the first cleanup never started deleting"
            await asyncio.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    left = await count_runs(server.api_url, flow_name)
    assert 2 < left < len(specs) - 2, f"killed too late to test anything ({left} left)"

    # The killed run's slot lease would expire on its own within a minute; an
    # operator (or this test) can free it at once.
    release_slot(server.api_url)
    report = await run_cleanup(**config.model_dump(exclude={"deletion"}))

    assert report.summary is not None
    assert report.summary.deleted == left - 2
    assert report.summary.failed == 0
    assert await surviving(server.api_url, ids) == set(ids[-2:])
