"""The fault-injection suite's servers and figures.

The suite gets servers of its own (SQLite and PostgreSQL), because these tests
restart them, cut their database off and lock their tables. Every test
records one row of figures (what was approved, what went outside it, whether
the next cleanup was locked out, what was lost, how the fault was announced);
the session prints them as a table at the end (``tests/conftest.py``), and the
README's reliability section shows them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.devstack.server import LocalServer
from helpers.faults import Record, write_figure
from helpers.servers import fresh_server

SERVER_ENV = {
    # Expired slot leases are taken back within a second instead of fifteen: a
    # killed worker's slot frees a minute after its last renewal, not 75 s.
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1",
}


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def fault_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    backend: str = request.param
    with fresh_server(backend, tmp_path_factory.mktemp(f"fault-{backend}"), SERVER_ENV) as server:
        yield server


@pytest.fixture
def record() -> Record:
    return write_figure
