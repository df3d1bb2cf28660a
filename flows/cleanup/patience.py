"""Waiting out trouble that passes: a busy or restarting server, a lock, a lost connection.

A batch commits whole or not at all (in-process) or is read back before it is
counted (API), so trying it again is safe; what is worth waiting for is
decided here, once, for both paths. A setup error (a wrong URL, a refused
permission) is never waited on: it fails at once with its own message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from prefect.logging import get_logger

from flows.errors import ArchiveError

RETRYABLE = {429, 502, 503, 504}
PATIENCE_SECONDS = 180.0
"""How long one batch waits out a busy, locked or restarting server before failing."""

logger = get_logger("janitor.deletion")
T = TypeVar("T")


_PASSING = {
    # PostgreSQL (asyncpg): the server went away, restarts, refuses connections for now.
    "AdminShutdownError",
    "CannotConnectNowError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "InterfaceError",
    "ObjectNotInPrerequisiteStateError",  # "database ... is not currently accepting connections"
    "TooManyConnectionsError",
}


def database_trouble(exc: BaseException) -> bool:
    """A lock held by another writer, a connection lost or refused: worth waiting out.

    A batch's transaction commits whole or not at all, so trying it again is safe.
    """
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, ArchiveError):  # a full disk or a refused write: never retried
        return False
    if isinstance(exc, OperationalError):  # SQLite "database is locked"; lost connections
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | OSError) or type(seen).__name__ in _PASSING:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def api_trouble(exc: BaseException) -> bool:
    """A busy server (503 on SQLite), a restart, a dropped connection: worth waiting out."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in RETRYABLE


async def patiently(
    call: Callable[[], Awaitable[T]], worth_waiting: Callable[[BaseException], bool]
) -> T:
    """Back off while ``worth_waiting`` says the trouble is passing, up to PATIENCE_SECONDS.

    The Prefect client already retries some of these for a few seconds; a server
    restart or a long lock takes longer, and slows a cleanup down instead of
    failing it.
    """
    deadline = time.monotonic() + PATIENCE_SECONDS
    delay = 0.5
    while True:
        try:
            return await call()
        except Exception as exc:
            if not worth_waiting(exc) or time.monotonic() + delay > deadline:
                raise
            logger.warning("waiting %.1f s: %s: %s", delay, type(exc).__name__, exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
