"""Helpers shared by tests that talk to a real server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from flows.devstack.server import LocalServer, sqlite_url

POSTGRES_DSN = os.environ.get("JANITOR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def simple(name: str, threshold: int = 1) -> str:
    """The smallest useful automation, as YAML."""
    return (
        f"name: {name}\ntrigger: {{expect: prefect.flow-run.Failed, threshold: {threshold}}}\n"
        "actions: [{type: do-nothing}]\n"
    )


async def call_api(api_url: str, method: str, path: str, json: Any = None) -> httpx.Response:
    """One raw request as a test's setup makes it: through Prefect's client, which waits
    out a busy server (a SQLite-backed server answers 503 under load), and raising for
    any other error, so a setup step that did not happen fails here, not as a wrong
    assertion later."""
    from prefect.client.orchestration import PrefectClient

    from triggers.api import send

    async with PrefectClient(api_url) as client:
        return await send(client, method, path, json)


async def server_automations(api_url: str) -> dict[str, dict[str, Any]]:
    response = await call_api(api_url, "POST", "/automations/filter", {})
    return {a["name"]: a for a in response.json()}


async def create_raw(api_url: str, name: str, tags: list[str]) -> str:
    """An automation made behind sync's back, as another team would."""
    body = {
        "name": name,
        "tags": tags,
        "trigger": {"type": "event", "expect": ["x.y"], "posture": "Reactive"},
        "actions": [{"type": "do-nothing"}],
    }
    response = await call_api(api_url, "POST", "/automations/", body)
    return str(response.json()["id"])


def problems_for(
    folder: Path, files: dict[str, str], env: dict[str, str] | None = None
) -> list[str]:
    from triggers.errors import SpecError
    from triggers.load.bundle import load_bundle

    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as caught:
        load_bundle(folder, environ=env or {}, display_root=folder)
    return [str(problem) for problem in caught.value.problems]


async def wait_for_events(
    api_url: str,
    event_filter: dict[str, Any],
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """Events matching ``event_filter`` (oldest first), once ``until`` holds or at timeout.

    Emitted events reach the database a moment later, through a buffered worker.
    """
    body = {
        "filter": {"occurred": {"since": "2000-01-01T00:00:00Z"}, "order": "ASC", **event_filter},
        "limit": 50,
    }
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        while True:
            response = await client.post("/events/filter", json=body)
            response.raise_for_status()
            found: list[dict[str, Any]] = response.json()["events"]
            if until(found) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.5)


def metric_filter(resource_id: str, *names: str) -> dict[str, Any]:
    """The probe's events named ``names`` about one resource."""
    return {
        "event": {"name": [f"janitor.metric.{name}" for name in names]},
        "resource": {"id": [resource_id]},
    }


async def _postgres_admin() -> asyncpg.Connection:
    return await asyncpg.connect(f"{POSTGRES_DSN}/postgres", timeout=3)


async def _create_database(name: str) -> str | None:
    """Create database ``name``; why not, when PostgreSQL cannot be reached."""
    try:
        conn = await _postgres_admin()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return None


async def _drop_database(name: str) -> None:
    conn = await _postgres_admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.contextmanager
def fresh_server(
    backend: str, home: Path, extra_env: dict[str, str] | None = None
) -> Iterator[LocalServer]:
    """A new server on an empty database of ``backend``, stopped (and the database
    dropped) afterwards; skips the test where PostgreSQL is not reachable."""
    if backend == "sqlite":
        with LocalServer(home, sqlite_url(home / "prefect.db"), extra_env=extra_env) as server:
            yield server
        return
    name = f"janitor_test_{uuid.uuid4().hex[:10]}"
    failure = asyncio.run(_create_database(name))
    if failure is not None:
        reason = f"PostgreSQL is not reachable at {POSTGRES_DSN} ({failure})"
        if os.environ.get("JANITOR_REQUIRE_POSTGRES") == "1":  # CI: a skip would hide it
            pytest.fail(f"{reason}; JANITOR_REQUIRE_POSTGRES=1 says it must be")
        pytest.skip(reason)
    url = POSTGRES_DSN.replace("postgresql://", "postgresql+asyncpg://", 1) + f"/{name}"
    try:
        with LocalServer(home, url, extra_env=extra_env) as server:
            yield server
    finally:
        asyncio.run(_drop_database(name))
