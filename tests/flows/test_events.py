"""Step events: notified steps are spaced so their Slack posts do not overlap."""

from __future__ import annotations

import time
import uuid

import pytest

from flows.devstack.server import LocalServer
from flows.events import CleanupStep, StepEvents
from helpers.cleanup import against

pytestmark = pytest.mark.anyio


async def test_notified_steps_wait_for_the_gap_and_quiet_ones_do_not(
    sqlite_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = StepEvents(uuid.uuid4(), "tidy-otter")
    events.gap = 0.3
    async with against(sqlite_server, "api", monkeypatch):
        started = time.monotonic()
        await events.emit(CleanupStep.APPROVAL_GRANTED, {})
        await events.emit(CleanupStep.DELETION_PROGRESS, {})  # posts nothing: no wait
        quiet = time.monotonic() - started
        await events.emit(CleanupStep.DELETION_STARTED, {})
        await events.emit(CleanupStep.DELETION_COMPLETED, {})
        spaced = time.monotonic() - started

    assert quiet < 0.2
    assert spaced >= 0.6
    occurred = [event.occurred for event in events.emitted]
    assert [event.follows for event in events.emitted[1:]] == [
        event.id for event in events.emitted[:-1]
    ]
    assert (occurred[3] - occurred[2]).total_seconds() >= 0.3
