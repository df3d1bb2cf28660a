"""The probe's light database reader: the server's database proven, or why not."""

from __future__ import annotations

import uuid

import pytest

from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history
from flows.probe.reader import Reader, server_database

pytestmark = pytest.mark.anyio


async def test_the_reader_proves_the_database_by_the_probes_own_run(
    server: LocalServer, flow_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (run_id,) = await make_history(server.api_url, server.database_url, [RunSpec(flow_name)])
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", server.database_url)
    async with server_database(run_id) as (database, why):
        assert isinstance(database, Reader), why  # the fast path, not Prefect's interface
        assert await database.scalar("SELECT count(*) FROM flow_run WHERE 1 = :one", one=1) >= 1
    async with server_database(uuid.uuid4()) as (database, why):
        assert database is None
        assert "does not hold this flow run" in why
    monkeypatch.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL")
    monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL", raising=False)
    async with server_database(run_id) as (database, why):
        assert database is None
        assert "PREFECT_SERVER_DATABASE_CONNECTION_URL is not set" in why
