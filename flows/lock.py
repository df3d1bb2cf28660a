"""One cleanup (and one probe) at a time, through Prefect global concurrency limits.

Five triggers firing together must give one cleanup, not five deletions racing
over the same rows. The limit is created on first use (one slot); a cleanup
that cannot take the slot within a few seconds ends as skipped.

The slot alone is not enough. Prefect keeps slot leases in the server's
memory by default while the count of taken slots lives in its database: a
server restart while a cleanup waits for approval loses the lease, the
cleanup's release then does nothing, and the slot stays taken for good. So
the holder also keeps a record of itself on the server (a Prefect Variable
named ``<limit>-holder``) with a heartbeat, renewed every
``HEARTBEAT_SECONDS`` while it holds the slot. A run that finds the slot
taken reads the record: a holder that is gone (no record after
``RECORD_GRACE_SECONDS``, a heartbeat older than ``STALE_SECONDS``, or a flow
run that has ended) left the slot behind, so the slot is freed, the recovery
announced (``janitor.lock.recovered``), and the slot taken. A live holder
means busy, as before. The grace is for a holder that has just taken the slot
and not yet written its record (seconds, on a busy server); a holder releases
the slot before it removes its record, for the same reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    VariableCreate,
    VariableUpdate,
)
from prefect.concurrency.asyncio import concurrency
from prefect.events import emit_event
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger
from pydantic import BaseModel, ValidationError

from flows.errors import Busy
from triggers.spec.automation import OWNER_TAG

LIMIT_NAME = "prefect-janitor-cleanup"
WAIT_SECONDS = 3.0
LEASE_SECONDS = 60.0  # the server's minimum; renewed while the cleanup runs
HEARTBEAT_SECONDS = 20.0
RECORD_GRACE_SECONDS = 15.0
"""How long a slot taken without a holder record is given for the record to appear."""
STALE_SECONDS = 90.0
"""A holder whose heartbeat is older than this is gone (a restart takes seconds)."""
RECOVERED = "janitor.lock.recovered"
HOLDER_TAG = "janitor:lock-holder"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
logger = get_logger("janitor.lock")


class Holder(BaseModel):
    """Who holds the slot, and when it last said it still does."""

    flow_run_id: UUID | None = None
    acquired_at: datetime
    renewed_at: datetime


def holder_variable(name: str) -> str:
    return f"{name}-holder"


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
async def exclusive(
    client: PrefectClient, name: str = LIMIT_NAME, flow_run_id: UUID | None = None
) -> AsyncIterator[None]:
    """Hold the slot ``name`` for the body, or raise ``Busy`` before entering it."""
    await ensure_limit(client, name)
    acquired = await _acquire(name)
    if acquired is None:
        why = await _left_behind(client, name)
        if why is None:
            raise Busy(f"another run holds {name!r}")
        acquired = await _acquire(name)  # freed while we looked?
        if acquired is None:
            await _recover(client, name, why)
            acquired = await _acquire(name)
        if acquired is None:
            raise Busy(f"another run took {name!r} while it was being recovered")
    now = datetime.now(UTC)
    holder = Holder(flow_run_id=flow_run_id, acquired_at=now, renewed_at=now)
    try:
        await _write(client, name, holder)
    except Exception as exc:  # the heartbeat writes it again; the work must not wait for it
        logger.warning("could not record the holder of %r yet: %s", name, exc)
    heartbeat = asyncio.create_task(_beat(client, name, holder))
    try:
        yield
    finally:
        # The slot first, the record after, and only if it is still ours: the other
        # way round, a contender would find the slot taken with no record beside it.
        heartbeat.cancel()
        with suppress(asyncio.CancelledError):
            await heartbeat
        try:
            await acquired.__aexit__(None, None, None)
        except Exception as exc:  # the work is done; the next run frees what is left
            logger.warning("could not release %r (%s); the next run will free it", name, exc)
        await _forget(client, name, holder)


async def _acquire(name: str) -> Any:
    """The entered slot context, or ``None`` when the slot stayed taken for WAIT_SECONDS."""
    acquired = concurrency(
        name,
        occupy=1,
        timeout_seconds=WAIT_SECONDS,
        lease_duration=LEASE_SECONDS,
        strict=True,
        # A lost lease (a server restart) must not cancel a deletion half-way: the
        # holder record keeps the slot defended, and the approved manifest keeps a
        # second cleanup harmless.
        raise_on_lease_renewal_failure=False,
    )
    try:
        await acquired.__aenter__()
    except TimeoutError:
        return None
    return acquired


async def _left_behind(client: PrefectClient, name: str) -> str | None:
    """Why the slot's holder is gone, or ``None`` when it is alive (really busy)."""
    variable = await client.read_variable_by_name(holder_variable(name))
    deadline = time.monotonic() + RECORD_GRACE_SECONDS
    while variable is None and time.monotonic() < deadline:
        # A holder records itself just after taking the slot; under load that write
        # lags by seconds, and taking the slot from a live holder would run two at
        # once. So give the record time to appear before calling the slot left.
        await asyncio.sleep(1.0)
        variable = await client.read_variable_by_name(holder_variable(name))
    if variable is None:
        return "the slot is taken but no holder recorded itself"
    try:
        holder = Holder.model_validate(variable.value)
    except ValidationError:
        return "the holder's record is unreadable"
    age = datetime.now(UTC) - holder.renewed_at
    if age > timedelta(seconds=STALE_SECONDS):
        return f"the holder's heartbeat stopped {age.total_seconds():.0f} s ago"
    if holder.flow_run_id is not None:
        try:
            run = await client.read_flow_run(holder.flow_run_id)
        except ObjectNotFound:
            return f"the holder, flow run {holder.flow_run_id}, no longer exists"
        state = run.state_type.value if run.state_type else None
        if state in TERMINAL:
            return f"the holder, flow run {run.name}, ended ({state.title()})"
    return None


async def _recover(client: PrefectClient, name: str, why: str) -> None:
    """Free a slot its holder left behind, and say so (an event for Slack, a warning)."""
    logger.warning("freeing %r: %s (a server restart loses Prefect's slot leases)", name, why)
    await client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
    with suppress(ObjectNotFound):
        await client.delete_variable_by_name(holder_variable(name))
    emit_event(
        event=RECOVERED,
        resource={"prefect.resource.id": f"janitor.lock.{name}", "prefect.resource.name": name},
        payload={"limit": name, "reason": why},
    )


async def _write(client: PrefectClient, name: str, holder: Holder) -> None:
    value = holder.model_dump(mode="json")
    variable = holder_variable(name)
    try:
        await client.create_variable(
            VariableCreate(name=variable, value=value, tags=[OWNER_TAG, HOLDER_TAG])
        )
    except ObjectAlreadyExists:
        await client.update_variable(VariableUpdate(name=variable, value=value))


async def _beat(client: PrefectClient, name: str, holder: Holder) -> None:
    """Renew the record while the slot is held; a failed beat (a restart) is retried."""
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        holder.renewed_at = datetime.now(UTC)
        try:
            await _write(client, name, holder)
        except Exception as exc:  # the server may be restarting; the next beat tries again
            logger.debug("lock heartbeat failed: %s", exc)


async def _forget(client: PrefectClient, name: str, holder: Holder) -> None:
    """Remove the holder record if it is still this holder's (a recovery may have
    handed the slot to someone else meanwhile)."""
    try:
        variable = await client.read_variable_by_name(holder_variable(name))
        if variable is None:
            return
        with suppress(ValidationError):
            recorded = Holder.model_validate(variable.value)
            if (recorded.flow_run_id, recorded.acquired_at) != (
                holder.flow_run_id,
                holder.acquired_at,
            ):
                return
        await client.delete_variable_by_name(holder_variable(name))
    except ObjectNotFound:
        pass
    except Exception as exc:  # the next run heals a record left behind
        logger.warning("could not remove the holder record of %r: %s", name, exc)
