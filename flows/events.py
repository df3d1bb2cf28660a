"""The cleanup's step events: the contract the Slack notification automations match on.

Every event is about the resource ``janitor.cleanup.<flow-run-id>`` and names
the flow run (and its deployment, when it has one) as related resources, so a
notification template can use ``flow_run``, ``deployment`` and ``|ui_url``.
Payloads are plain JSON holding what a message needs.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum
from typing import Any
from uuid import UUID

from prefect.events import emit_event
from prefect.events.schemas.events import Event
from pydantic import BaseModel


class CleanupStep(StrEnum):
    """The cleanup's steps, as the names of the events that announce them."""

    PREVIEWED = "janitor.cleanup.previewed"
    NOTHING_TO_DO = "janitor.cleanup.nothing-to-do"
    SKIPPED = "janitor.cleanup.skipped"
    FAILED = "janitor.cleanup.failed"
    APPROVAL_REQUESTED = "janitor.approval.requested"
    APPROVAL_GRANTED = "janitor.approval.granted"
    APPROVAL_REJECTED = "janitor.approval.rejected"
    APPROVAL_TIMED_OUT = "janitor.approval.timed-out"
    DELETION_STARTED = "janitor.deletion.started"
    DELETION_PROGRESS = "janitor.deletion.progress"
    DELETION_COMPLETED = "janitor.deletion.completed"
    DELETION_FAILED = "janitor.deletion.failed"


class ArchiveStep(StrEnum):
    """What ``scripts/restore.py`` announces, about the resource ``janitor.restore.<archive>``."""

    RESTORED = "janitor.archive.restored"
    RESTORE_REFUSED = "janitor.archive.restore-refused"


async def announce(step: ArchiveStep, archive: str, payload: dict[str, Any]) -> None:
    """Emit one event from a script and wait until the server has it (a process that
    ends right after must not lose it, as a background worker's queue could)."""
    from prefect.events.clients import get_events_client
    from prefect.events.schemas.events import Resource

    event = Event(
        event=step.value,
        resource=Resource(
            {"prefect.resource.id": f"janitor.restore.{archive}", "prefect.resource.name": archive}
        ),
        payload=payload,
    )
    async with get_events_client() as client:
        await client.emit(event)


QUIET = {CleanupStep.PREVIEWED, CleanupStep.DELETION_PROGRESS}
"""Steps that only inform: no Slack message."""
NOTIFY_GAP_SECONDS = 1.0


def cleanup_resource(flow_run_id: UUID | str) -> str:
    """The resource of every step event of the cleanup run ``flow_run_id``."""
    return f"janitor.cleanup.{flow_run_id}"


class StepEvents:
    """Emits the step events of one cleanup run."""

    def __init__(
        self,
        flow_run_id: UUID,
        flow_run_name: str = "",
        deployment_id: UUID | None = None,
    ) -> None:
        self.flow_run_id = flow_run_id
        self.deployment_id = deployment_id
        self.resource = {
            "prefect.resource.id": cleanup_resource(flow_run_id),
            "prefect.resource.name": flow_run_name or "database-cleanup",
        }
        self.related = [
            {
                "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                "prefect.resource.role": "flow-run",
                "prefect.resource.name": flow_run_name,
            }
        ]
        if deployment_id is not None:
            self.related.append(
                {
                    "prefect.resource.id": f"prefect.deployment.{deployment_id}",
                    "prefect.resource.role": "deployment",
                }
            )
        self.emitted: list[Event] = []
        self.gap = NOTIFY_GAP_SECONDS
        self._last_notified = float("-inf")

    async def emit(self, step: CleanupStep, payload: BaseModel | dict[str, Any]) -> Event | None:
        """Emit one step; it ``follows`` the previous one, and a notified step waits
        until ``NOTIFY_GAP_SECONDS`` after the last notified one.

        The OSS server runs actions two at a time, and in Prefect 3.8 every
        call-webhook closes the connection pool it shares with the others, so
        two Slack posts at once can break each other (``ReadError``) and arrive
        in either order. A second between messages is nothing to a cleanup and
        keeps them apart; ``follows`` orders the triggers' evaluation as well.
        """
        if step not in QUIET:
            wait = self._last_notified + self.gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_notified = time.monotonic()
        data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        event = emit_event(
            event=step.value,
            resource=self.resource,
            related=self.related,
            payload=data,
            follows=self.emitted[-1] if self.emitted else None,
        )
        if event is not None:
            self.emitted.append(event)
        return event


class Throttle:
    """Lets an action through at most once per interval (progress events, artifacts)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = float("-inf")

    def ready(self) -> bool:
        current = time.monotonic()
        if current - self._last < self.interval:
            return False
        self._last = current
        return True
