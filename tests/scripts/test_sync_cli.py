"""`python scripts/sync.py` as a user runs it: exit codes, output, failures, convergence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate

from flows.devstack.processes import free_port
from flows.devstack.server import LocalServer, sqlite_url
from helpers import ROOT
from helpers.servers import simple

SCRIPT = ROOT / "scripts" / "sync.py"


def run(
    *args: str, api_url: str | None, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    environ["COLUMNS"] = "200"
    if api_url:
        environ["PREFECT_API_URL"] = api_url
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=environ,
        timeout=120,
    )


def test_plan_apply_and_exit_codes(api_url: str, automations_dir: Path) -> None:
    (automations_dir / "a.yaml").write_text(simple("cli-one"))
    path = ["--path", str(automations_dir)]

    check = run("--check", *path, api_url=api_url)
    assert check.returncode == 2, check.stdout + check.stderr
    assert "+ create" in check.stdout
    assert "cli-one" in check.stdout

    applied = run(*path, api_url=api_url)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Applied: 1 created" in applied.stdout
    out = applied.stdout
    assert out.index("Plan for") < out.index("create automation cli-one"), "plan before writes"
    assert "Summary: 1 to create" in applied.stdout

    again = run("--json", *path, api_url=api_url)
    assert again.returncode == 0
    report = json.loads(again.stdout)
    assert report["in_sync"] is True
    assert report["requests"]["writes"] == 0
    assert [step["action"] for step in report["plan"]] == ["unchanged"]

    assert run("--check", *path, api_url=api_url).returncode == 0


def test_invalid_yaml_exits_1_with_file_and_line(api_url: str, automations_dir: Path) -> None:
    (automations_dir / "bad.yaml").write_text("name: x\ntrigger:\n  expct: a\nactions: []\n")
    result = run("--path", str(automations_dir), api_url=api_url, cwd=automations_dir.parent)
    assert result.returncode == 1
    assert "automations/bad.yaml:3: trigger.expct: unknown field 'expct'" in result.stdout
    assert "nothing was written" in result.stdout
    assert httpx.post(f"{api_url}/automations/filter", json={}).json() == []


def test_unowned_conflict_exits_3(api_url: str, automations_dir: Path) -> None:
    body = {
        "name": "taken",
        "trigger": {"type": "event", "expect": ["x"], "posture": "Reactive"},
        "actions": [{"type": "do-nothing"}],
    }
    httpx.post(f"{api_url}/automations/", json=body).raise_for_status()
    (automations_dir / "a.yaml").write_text(simple("taken"))
    result = run("--path", str(automations_dir), api_url=api_url)
    assert result.returncode == 3
    assert "! conflict" in result.stdout
    assert "Nothing applied" in result.stdout


def test_unreachable_server_is_one_line_with_the_fix(automations_dir: Path) -> None:
    (automations_dir / "a.yaml").write_text(simple("x"))
    url = f"http://127.0.0.1:{free_port()}/api"
    result = run("--path", str(automations_dir), api_url=url)
    assert result.returncode == 4
    assert f"error: cannot reach the Prefect API at {url}" in result.stdout
    assert "fix:" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_api_url(automations_dir: Path) -> None:
    (automations_dir / "a.yaml").write_text(simple("x"))
    result = run("--path", str(automations_dir), api_url=None)
    assert result.returncode == 4
    assert "PREFECT_API_URL is not set" in result.stdout


def test_schema_flag_prints_the_shipped_schema() -> None:
    result = run("--schema", api_url=None)
    assert result.returncode == 0
    assert result.stdout == (ROOT / "automations" / "schema.json").read_text()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    home = tmp_path_factory.mktemp("prefect-auth")
    server = LocalServer(
        home,
        sqlite_url(home / "prefect.db"),
        extra_env={"PREFECT_SERVER_API_AUTH_STRING": "admin:s3cret"},
    )
    with server:
        yield server


def test_refused_credentials_exit_4(auth_server: LocalServer, automations_dir: Path) -> None:
    (automations_dir / "a.yaml").write_text(simple("x"))
    result = run("--path", str(automations_dir), api_url=auth_server.api_url)
    assert result.returncode == 4
    assert "refused the credentials (401)" in result.stdout
    assert "PREFECT_API_AUTH_STRING" in result.stdout
    ok = run(
        "--path",
        str(automations_dir),
        api_url=auth_server.api_url,
        env={"PREFECT_API_AUTH_STRING": "admin:s3cret"},
    )
    assert ok.returncode == 0, ok.stdout


@pytest.mark.anyio
async def test_failure_midway_says_what_was_applied_and_rerun_converges(
    api_url: str, automations_dir: Path
) -> None:
    from prefect.workers.process import ProcessWorker

    async with PrefectClient(api_url) as client:
        pool = "cli-process-pool"
        if not any(p.name == pool for p in await client.read_work_pools()):
            await client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
        flow_id = await client.create_flow_from_name("cli-flow")
        await client.create_deployment(flow_id=flow_id, name="typed", work_pool_name=pool)
    (automations_dir / "a.yaml").write_text(simple("a-first"))
    broken = textwrap.dedent(
        """\
        name: b-second
        trigger: {expect: prefect.flow-run.Failed}
        actions:
          - type: run-deployment
            deployment: cli-flow/typed
            job_variables: {stream_output: "not a boolean"}
        """
    )
    (automations_dir / "b.yaml").write_text(broken)
    result = run("--path", str(automations_dir), api_url=api_url)
    assert result.returncode == 4, result.stdout
    assert "the server rejected POST /automations/ (422)" in result.stdout
    assert "applied before the failure: create a-first" in result.stdout
    assert "not applied: create b-second" in result.stdout
    names = {a["name"] for a in httpx.post(f"{api_url}/automations/filter", json={}).json()}
    assert names == {"a-first"}

    (automations_dir / "b.yaml").write_text(broken.replace('"not a boolean"', "true"))
    rerun = run("--json", "--path", str(automations_dir), api_url=api_url)
    assert rerun.returncode == 0, rerun.stdout
    steps = {s["name"]: s["action"] for s in json.loads(rerun.stdout)["plan"]}
    assert steps == {"a-first": "unchanged", "b-second": "create"}


def test_api_url_without_api_suffix_is_a_clean_error(api_url: str, automations_dir: Path) -> None:
    (automations_dir / "a.yaml").write_text(simple("x"))
    result = run("--path", str(automations_dir), api_url=api_url.removesuffix("/api"))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "/api" in result.stdout
