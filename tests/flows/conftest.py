"""Fixtures for running the real cleanup flow against the session's real servers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flows.cleanup.config import RetentionConfig
from flows.cleanup.flow import CleanupReport, database_cleanup
from flows.devstack.server import LocalServer
from helpers.cleanup import RunCleanup, against, path_settings, release_slot


@pytest.fixture
def flow_name() -> str:
    """A flow of this test's own, so counts are not disturbed by other tests' runs."""
    return f"history-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def free_slot(server: LocalServer) -> LocalServer:
    """Start with the cleanup slot free, whatever an earlier (killed) cleanup left."""
    release_slot(server.api_url)
    return server


@pytest.fixture(params=["api", "database"])
def path(request: pytest.FixtureRequest) -> str:
    """The deletion path: through the API, or in-process on the server's database."""
    value: str = request.param
    return value


@pytest.fixture
def run_cleanup(free_slot: LocalServer, path: str, monkeypatch: pytest.MonkeyPatch) -> RunCleanup:
    async def run(**settings: Any) -> CleanupReport:
        config = RetentionConfig(**{**path_settings(path), **settings})
        async with against(free_slot, path, monkeypatch):
            report = await database_cleanup(config)
        expected = "database" if path == "database" else "api-bulk"
        if report.summary is not None:
            assert report.summary.path == expected
        return report

    return run
