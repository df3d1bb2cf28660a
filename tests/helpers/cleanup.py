"""Helpers for tests that run the real cleanup flow against the session's real servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import PrefectHTTPStatusError
from prefect.input.run_input import keyset_from_paused_state
from prefect.settings import (
    PREFECT_API_DATABASE_CONNECTION_URL,
    PREFECT_API_URL,
    temporary_settings,
)

from flows.cleanup.flow import CleanupReport
from flows.devstack.server import LocalServer
from flows.lock import LIMIT_NAME, holder_variable
from helpers.servers import wait_for_events

RunCleanup = Callable[..., Coroutine[Any, Any, CleanupReport]]


def path_settings(path: str) -> dict[str, Any]:
    """The config of a cleanup that deletes by ``path``: in-process on the database, or
    through the API, which cannot archive and so deletes only with ``archive: none``."""
    if path == "database":
        return {"deletion": "auto"}
    return {"deletion": "api", "archive": "none"}


@asynccontextmanager
async def against(
    server: LocalServer,
    path: str,
    monkeypatch: pytest.MonkeyPatch,
    api_url: str | None = None,
    database_url: str | None = None,
) -> AsyncIterator[None]:
    """Point Prefect at ``server`` (or at ``api_url``, a proxy in front of it); with path
    "database", let the flow reach the server's database (through ``database_url``)."""
    updates: dict[Any, Any] = {PREFECT_API_URL: api_url or server.api_url}
    if path == "database":
        url = database_url or server.database_url
        monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", url)
        updates[PREFECT_API_DATABASE_CONNECTION_URL] = url
    else:
        monkeypatch.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", raising=False)
        monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL", raising=False)
    await drain_services()
    _forget_database()
    try:
        with temporary_settings(updates=updates):
            yield
    finally:
        await drain_services()


def _forget_database() -> None:
    """Prefect keeps the first database it was pointed at for the process; tests use two."""
    from prefect.server.database.dependencies import MODELS_DEPENDENCIES

    for key in ("database_config", "query_components", "orm", "interface_class"):
        MODELS_DEPENDENCIES[key] = None


async def drain_services() -> None:
    """Prefect's background services bind to the API URL they first saw; the tests
    switch servers, so flush and stop them (events included) when switching."""
    from prefect.concurrency.services import ConcurrencySlotAcquisitionWithLeaseService
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (EventsWorker, APILogWorker, ConcurrencySlotAcquisitionWithLeaseService):
        await service.drain_all(timeout=30)  # type: ignore[misc]


def release_slot(api_url: str, name: str = LIMIT_NAME) -> None:
    """Free a concurrency slot a killed run may have left taken (the cleanup's by default),
    and forget its holder."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for method, path, body in (
            ("PATCH", f"/v2/concurrency_limits/{name}", {"active_slots": 0}),
            ("DELETE", f"/variables/name/{holder_variable(name)}", None),
        ):
            # A SQLite-backed server answers 503 while another writer holds its lock.
            for _ in range(20):
                response = client.request(method, path, json=body)
                if response.status_code != 503:
                    break
                time.sleep(0.5)
            assert response.status_code in (204, 404), response.text


async def surviving(api_url: str, ids: list[UUID]) -> set[UUID]:
    async with PrefectClient(api_url) as client:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids) or 1
        )
    return {run.id for run in runs}


async def events_of(
    api_url: str, flow_run_id: UUID, expect: str, timeout: float = 30
) -> list[dict[str, Any]]:
    """The janitor events about one cleanup, once ``expect`` has been persisted."""
    return await wait_for_events(
        api_url,
        {"any_resource": {"id": [f"janitor.cleanup.{flow_run_id}"]}},
        lambda found: any(event["event"] == expect for event in found),
        timeout,
    )


def names(events: list[dict]) -> list[str]:
    return [event["event"] for event in events]


async def paused_cleanups(api_url: str, count: int = 1, timeout: float = 60) -> list[UUID]:
    """Wait until ``count`` cleanup runs are paused and their approval form is up.

    Prefect pauses a run first and saves its form's schema after; an answer in
    between is refused ("Run input schema not found"), so a run counts once its
    schema is there, as it does for a person looking at the UI.
    """
    deadline = time.monotonic() + timeout
    async with PrefectClient(api_url) as client:
        while True:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["database-cleanup"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
            )
            ready = [run.id for run in runs if await _form_is_up(client, run)]
            if len(ready) >= count or time.monotonic() > deadline:
                return ready
            await asyncio.sleep(0.3)


async def _form_is_up(client: PrefectClient, run: FlowRun) -> bool:
    if run.state is None or not run.state.is_paused():
        return False
    schema = keyset_from_paused_state(run.state)["schema"]
    try:
        await client.read_flow_run_input(run.id, schema)
    except PrefectHTTPStatusError as error:
        if error.response.status_code == 404:
            return False
        raise
    return True
