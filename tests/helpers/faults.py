"""What the fault-injection suite (tests/faults) shares: restarts, the cleanup, figures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from flows.cleanup.config import RetentionConfig
from flows.cleanup.flow import CleanupReport, database_cleanup
from flows.devstack.server import LocalServer
from helpers import FAULT_FIGURES
from helpers.cleanup import against, path_settings


@dataclass
class Figure:
    """One fault, tried once, and what came of it."""

    fault: str
    backend: str
    path: str
    approved: int
    deleted: int
    outside_approval: int
    locked_out: bool
    lost: int
    announced: str


Record = Callable[[Figure], None]


def write_figure(figure: Figure) -> None:
    FAULT_FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FAULT_FIGURES.open("a") as out:
        out.write(json.dumps({**asdict(figure), "at": time.time()}) + "\n")


def backend_of(server: LocalServer) -> str:
    return "sqlite" if server.database_url.startswith("sqlite") else "postgres"


def restart(server: LocalServer) -> None:
    """Stop the server and start it again on the same port and database."""
    server.stop()
    server.start().wait()


ONE_RUN_A_BATCH: dict[str, Any] = {"approval": "none", "batch_size": 1, "batch_seconds": 0}
"""Settings for a cleanup a fault lands in the middle of: unapproved, one run a
batch, and every batch that size (never sized by time)."""


async def cleanup(
    server: LocalServer,
    path: str,
    monkeypatch: pytest.MonkeyPatch,
    api_url: str | None = None,
    database_url: str | None = None,
    **settings: Any,
) -> CleanupReport:
    """The real cleanup flow, in this process, against ``server`` (through ``api_url`` and
    ``database_url``, proxies in front of them)."""
    config = RetentionConfig(**{**path_settings(path), **settings})
    async with against(server, path, monkeypatch, api_url, database_url):
        return await database_cleanup(config)


async def tally(
    server: LocalServer, ids: list[Any], may_go: set[Any], must_stay: set[Any]
) -> tuple[int, int, int]:
    """What the database shows: runs gone, gone outside what may go, gone that must stay."""
    from helpers.cleanup import surviving

    gone = set(ids) - await surviving(server.api_url, ids)
    return len(gone), len(gone - may_go), len(gone & must_stay)
