"""One cleanup (and one probe) at a time, through Prefect global concurrency limits.

Five triggers firing together must give one cleanup, not five deletions racing
over the same rows. The limit is created on first use (one slot); a cleanup
that cannot take the slot within a few seconds ends as skipped. The slot is a
lease: if a cleanup is killed, the server frees it when the lease runs out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.asyncio import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger

from flows.errors import Busy

LIMIT_NAME = "prefect-janitor-cleanup"
WAIT_SECONDS = 3.0
LEASE_SECONDS = 60.0  # the server's minimum; renewed while the cleanup runs
logger = get_logger("janitor.lock")


async def ensure_limit(client: PrefectClient, name: str = LIMIT_NAME) -> None:
    """Create the limit, or put it back to one active slot if someone changed it.

    An inactive limit, or one with more slots, would let cleanups race; the slot
    is the bundle's own, so resetting it is safe (and logged).
    """
    try:
        limit = await client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        with suppress(ObjectAlreadyExists):  # another cleanup created it just now
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=1)
            )
        return
    if limit.limit != 1 or not limit.active:
        logger.warning(
            "global concurrency limit %r was limit=%s active=%s; setting it back to 1, active",
            name,
            limit.limit,
            limit.active,
        )
        await client.update_global_concurrency_limit(
            name, GlobalConcurrencyLimitUpdate(limit=1, active=True)
        )


@asynccontextmanager
async def exclusive(client: PrefectClient, name: str = LIMIT_NAME) -> AsyncIterator[None]:
    """Hold the slot ``name`` for the body, or raise ``Busy`` before entering it."""
    await ensure_limit(client, name)
    acquired = concurrency(
        name,
        occupy=1,
        timeout_seconds=WAIT_SECONDS,
        lease_duration=LEASE_SECONDS,
        strict=True,
        # A lost lease must not cancel a deletion half-way: the filters make a
        # second cleanup that starts meanwhile harmless.
        raise_on_lease_renewal_failure=False,
    )
    try:
        await acquired.__aenter__()
    except TimeoutError as exc:
        raise Busy(f"another run holds {name!r}") from exc
    try:
        yield
    except BaseException as exc:
        if not await acquired.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await acquired.__aexit__(None, None, None)
