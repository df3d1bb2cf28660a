"""prefect.yaml and the served deployments describe the same two deployments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from flows.cleanup.config import RetentionConfig
from flows.devstack.server import request
from flows.serve import deployments
from helpers import ROOT
from helpers.servers import fresh_server


def test_prefect_yaml_matches_the_served_deployments() -> None:
    declared = {
        d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }
    served = {d.name: d for d in deployments(probe_interval=60)}
    assert set(declared) == set(served) == {"database-cleanup", "metric-probe"}
    for name, deployment in served.items():
        entry = declared[name]
        path, function = entry["entrypoint"].split(":")
        assert (ROOT / path).is_file()
        assert deployment.entrypoint is not None
        assert deployment.entrypoint.endswith(f"{path}:{function}")
        assert entry["tags"] == deployment.tags
    cleanup = served["database-cleanup"]
    assert cleanup.concurrency_options is not None
    assert declared["database-cleanup"]["concurrency_limit"] == {
        "limit": cleanup.concurrency_limit,
        "collision_strategy": cleanup.concurrency_options.collision_strategy.value,
    }
    (schedule,) = served["metric-probe"].schedules or []
    assert declared["metric-probe"]["schedules"] == [{"interval": 60}]
    assert schedule.schedule.interval.total_seconds() == 60  # type: ignore[union-attr]


def _prefect(*args: str, env: dict[str, str], timeout: float = 120) -> str:
    """The ``prefect`` CLI of this environment, run from the project as a user would."""
    command = [str(Path(sys.executable).with_name("prefect")), *args]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_prefect_deploy_all_then_a_process_worker_runs_both(tmp_path: Path) -> None:
    """The README's production path on a fresh server: work pool, `prefect deploy --all`,
    a process worker; the deployments are what prefect.yaml says, and runs complete."""
    with fresh_server("sqlite", tmp_path / "server") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=server.api_url, PREFECT_HOME=str(tmp_path / "home"))
        _prefect("work-pool", "create", "janitor", "--type", "process", env=env)
        _prefect("--no-prompt", "deploy", "--all", env=env)

        with httpx.Client(base_url=server.api_url, timeout=30) as client:
            cleanup = request(client, "GET", "/deployments/name/database-cleanup/database-cleanup")
            probe = request(client, "GET", "/deployments/name/metric-probe/metric-probe")
            cleanup, probe = cleanup.raise_for_status().json(), probe.raise_for_status().json()
            assert cleanup["work_pool_name"] == probe["work_pool_name"] == "janitor"
            assert cleanup["global_concurrency_limit"]["limit"] == 1
            assert cleanup["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
            assert cleanup["parameters"] == {}, "a run without parameters gets the defaults"
            schema = cleanup["parameter_openapi_schema"]
            assert schema["properties"]["config"]["default"] == RetentionConfig().model_dump(
                mode="json"
            )
            (schedule,) = probe["schedules"]
            assert schedule["schedule"]["interval"] == 60
            assert schedule["active"] is True

            # The scheduler is planning the probe's next hour now: SQLite may answer 503.
            dry = {"parameters": {"config": {"dry_run": True}}}
            runs = [
                request(client, "POST", f"/deployments/{cleanup['id']}/create_flow_run", dry),
                request(client, "POST", f"/deployments/{probe['id']}/create_flow_run", {}),
            ]
            ids = [run.raise_for_status().json()["id"] for run in runs]
            _prefect("worker", "start", "--pool", "janitor", "--run-once", env=env)
            read = [request(client, "GET", f"/flow_runs/{i}").json() for i in ids]
            states = [run["state"]["type"] for run in read]
        assert states == ["COMPLETED", "COMPLETED"]
