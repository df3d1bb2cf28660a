"""One cleanup at a time, through a Prefect global concurrency limit.

Five triggers firing together must give one cleanup, not five deletions racing
over the same rows. The limit is created on first use (one slot); a cleanup
that cannot take the slot within a few seconds ends as skipped. The slot is a
lease: if a cleanup is killed, the server frees it when the lease runs out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.asyncio import concurrency
from prefect.exceptions import ObjectAlreadyExists

LIMIT_NAME = "prefect-janitor-cleanup"
WAIT_SECONDS = 3.0
LEASE_SECONDS = 60.0  # the server's minimum; renewed while the cleanup runs


async def ensure_limit(client: PrefectClient) -> None:
    with suppress(ObjectAlreadyExists):
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=LIMIT_NAME, limit=1)
        )


class Busy(Exception):
    """Another cleanup holds the slot."""


@asynccontextmanager
async def exclusive(client: PrefectClient) -> AsyncIterator[None]:
    """Hold the cleanup slot for the body, or raise ``Busy`` before entering it."""
    await ensure_limit(client)
    acquired = concurrency(
        LIMIT_NAME,
        occupy=1,
        timeout_seconds=WAIT_SECONDS,
        lease_duration=LEASE_SECONDS,
        strict=True,
    )
    try:
        await acquired.__aenter__()
    except TimeoutError as exc:
        raise Busy(f"another cleanup holds {LIMIT_NAME!r}") from exc
    try:
        yield
    except BaseException as exc:
        if not await acquired.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await acquired.__aexit__(None, None, None)
