"""Real Prefect servers for the test session: SQLite always, PostgreSQL where reachable."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

# Keep the client side of the tests away from the developer's own profile.
_CLIENT_HOME = tempfile.mkdtemp(prefix="janitor-client-")
os.environ["PREFECT_HOME"] = _CLIENT_HOME
for _key in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE"):
    os.environ.pop(_key, None)

import asyncpg  # type: ignore[import-untyped]  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402

from flows.localserver import LocalServer, sqlite_url  # noqa: E402

POSTGRES_DSN = os.environ.get("JANITOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    home = tmp_path_factory.mktemp("prefect-sqlite")
    with LocalServer(home, sqlite_url(home / "prefect.db")) as server:
        yield server


async def _postgres_admin() -> asyncpg.Connection:
    return await asyncpg.connect(f"{POSTGRES_DSN}/postgres", timeout=3)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    import asyncio

    name = f"janitor_test_{uuid.uuid4().hex[:10]}"

    async def create() -> str | None:
        try:
            conn = await _postgres_admin()
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return None

    async def drop() -> None:
        conn = await _postgres_admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    failure = asyncio.run(create())
    if failure is not None:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_DSN} ({failure})")
    home = tmp_path_factory.mktemp("prefect-postgres")
    url = POSTGRES_DSN.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
    try:
        with LocalServer(home, url) as server:
            yield server
    finally:
        asyncio.run(drop())


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
    """A SQLite-backed server answers 503 while its services write; wait and retry."""
    for attempt in range(8):
        response = client.request(method, path, json=body)
        if response.status_code not in (429, 503):
            break
        time.sleep(0.25 * 2**attempt)
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
