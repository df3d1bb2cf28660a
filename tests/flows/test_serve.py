"""prefect.yaml and the served deployments describe the same two deployments."""

from __future__ import annotations

from pathlib import Path

import yaml

from flows.serve import deployments

ROOT = Path(__file__).resolve().parents[2]


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
