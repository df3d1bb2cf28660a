"""Real Prefect servers for the test session: SQLite always, PostgreSQL where reachable."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Keep the client side of the tests away from the developer's own profile.
_CLIENT_HOME = tempfile.mkdtemp(prefix="janitor-client-")
os.environ["PREFECT_HOME"] = _CLIENT_HOME
for _key in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE"):
    os.environ.pop(_key, None)

import httpx  # noqa: E402
import pytest  # noqa: E402

from flows.devstack import server as local_server  # noqa: E402
from flows.devstack.server import LocalServer  # noqa: E402
from helpers import FAULT_FIGURES  # noqa: E402
from helpers.servers import fresh_server  # noqa: E402


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with fresh_server("sqlite", tmp_path_factory.mktemp("prefect-sqlite")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with fresh_server("postgres", tmp_path_factory.mktemp("prefect-postgres")) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> LocalServer:
    """Each test using this runs once per database backend."""
    backend: LocalServer = request.getfixturevalue(f"{request.param}_server")
    return backend


@pytest.fixture
def api_url(server: LocalServer) -> str:
    """The server's API URL, with the automations, blocks and metric rules of earlier
    tests removed."""
    _clean(server.api_url)
    return server.api_url


def _clean(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for automation in _call(client, "POST", "/automations/filter", {}).json():
            _call(client, "DELETE", f"/automations/{automation['id']}")
        documents = _call(
            client,
            "POST",
            "/block_documents/filter",
            {"block_documents": {"is_anonymous": {"eq_": False}}},
        ).json()
        for document in documents:
            _call(client, "DELETE", f"/block_documents/{document['id']}")
        variables = _call(
            client,
            "POST",
            "/variables/filter",
            {"variables": {"name": {"like_": "janitor-metric-"}}},
        ).json()
        for variable in variables:
            _call(client, "DELETE", f"/variables/name/{variable['name']}")


def _call(client: httpx.Client, method: str, path: str, body: object = None) -> httpx.Response:
    response = local_server.request(client, method, path, body)
    if response.status_code != 404:  # already gone is fine
        response.raise_for_status()
    return response


@pytest.fixture
def automations_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "automations"
    (folder / "templates").mkdir(parents=True)
    return folder


@pytest.fixture
async def deployment(api_url: str) -> str:
    """A real deployment record (flow janitor-test, deployment nightly) to point actions at."""
    from prefect.client.orchestration import PrefectClient

    async with PrefectClient(api_url) as client:
        flow_id = await client.create_flow_from_name("janitor-test")
        deployment_id = await client.create_deployment(flow_id=flow_id, name="nightly")
    return str(deployment_id)


_STARTED = time.time()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault suite's figures (tests/faults), as the README's reliability table: the
    rows this session's workers wrote (each row carries the time it was written)."""
    if hasattr(terminalreporter.config, "workerinput") or not FAULT_FIGURES.exists():
        return
    rows = [json.loads(line) for line in FAULT_FIGURES.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row.get("at", 0) >= _STARTED]
    if not rows:
        return
    terminalreporter.write_sep("-", "faults tried (tests/faults)")
    terminalreporter.write_line(
        "| fault | backend | path | approved | deleted | outside approval "
        "| next cleanup locked out | lost | announced |"
    )
    terminalreporter.write_line("|---|---|---|---:|---:|---:|---|---:|---|")
    for row in sorted(rows, key=lambda r: (r["fault"], r["backend"], r["path"])):
        terminalreporter.write_line(
            f"| {row['fault']} | {row['backend']} | {row['path']} | {row['approved']} "
            f"| {row['deleted']} | {row['outside_approval']} "
            f"| {'yes' if row['locked_out'] else 'no'} | {row['lost']} | {row['announced']} |"
        )
