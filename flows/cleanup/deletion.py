"""Deleting the approved runs, in batches, fast, and never more than approved.

Two paths share one loop. In-process (``Database``) each batch is selected and
deleted, with its logs and artifacts, in one locking transaction built from the
``Selection``, so a run that changed since the preview is simply not selected,
and a cleanup killed half-way leaves whole batches behind and converges when
run again. Through the API each batch is read, re-checked against the
selection, and deleted with ``POST /flow_runs/bulk_delete`` restricted to those
ids and to the selection's states and cutoff; servers without that endpoint
get per-run deletes. Both stop at the approved count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Literal, TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from pydantic import BaseModel, Field

from flows.cleanup.selection import Selection
from flows.database import Database
from flows.errors import CleanupError
from triggers import api
from triggers.errors import ExitCode

API_BATCH_LIMIT = 50  # the server's BULK_OPERATION_LIMIT on 3.8
RETRYABLE = {429, 502, 503, 504}
ATTEMPTS = 6

Path = Literal["database", "api-bulk", "api-per-run"]
logger = get_logger("janitor.deletion")
T = TypeVar("T")


class DeletionProgress(BaseModel):
    """Where a deletion stands; sent as events and shown as an artifact."""

    target: int = Field(description="How many runs were approved for deletion.")
    deleted: int = Field(0, description="Runs deleted so far (already-gone runs count).")
    failed: int = Field(0, description="Runs whose delete failed for good.")
    elapsed_seconds: float = Field(0.0, description="Seconds since the deletion started.")
    path: Path = Field("api-bulk", description="How the runs are being deleted.")

    @property
    def fraction(self) -> float:
        return min(1.0, self.deleted / self.target) if self.target else 1.0

    @property
    def runs_per_second(self) -> float:
        return self.deleted / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


OnProgress = Callable[[DeletionProgress], Awaitable[None] | None]


class DeletionFailed(CleanupError):
    """Deleting stopped part-way; ``progress`` says how far it got.

    Every run deleted was approved; the next cleanup picks up where this one stopped.
    """

    exit_code = ExitCode.SERVER

    def __init__(self, message: str, progress: DeletionProgress) -> None:
        super().__init__(message, "run the cleanup again once the cause is fixed")
        self.progress = progress

    def __str__(self) -> str:
        return self.cause


async def delete_runs(
    selection: Selection,
    approved: int,
    *,
    client: PrefectClient,
    database: Database | None = None,
    batch_size: int = 500,
    on_progress: OnProgress | None = None,
) -> DeletionProgress:
    """Delete up to ``approved`` runs of ``selection``, oldest first, and say how it went."""
    started = time.monotonic()
    progress = DeletionProgress(target=approved, path="database" if database else "api-bulk")
    batch = _Api(client, selection) if database is None else _InProcess(database, selection)
    size = batch_size if database is not None else min(batch_size, API_BATCH_LIMIT)
    while progress.deleted + progress.failed < approved:
        want = min(size, approved - progress.deleted - progress.failed)
        try:
            deleted, failed, seen = await batch.delete(want)
        except Exception as exc:
            progress.elapsed_seconds = time.monotonic() - started
            raise DeletionFailed(f"{type(exc).__name__}: {exc}", progress) from exc
        progress.deleted += deleted
        progress.failed += failed
        progress.path = batch.path
        progress.elapsed_seconds = time.monotonic() - started
        await _report(on_progress, progress)
        if not seen:
            break  # nothing left that matches
    progress.elapsed_seconds = time.monotonic() - started
    return progress


async def _report(on_progress: OnProgress | None, progress: DeletionProgress) -> None:
    """DeletionProgress reporting is a courtesy: a failure there never stops a deletion."""
    if on_progress is None:
        return
    try:
        result = on_progress(progress.model_copy())
        if result is not None:
            await result
    except Exception as exc:
        logger.warning("could not report progress (%s: %s)", type(exc).__name__, exc)


class _InProcess:
    """One locking transaction per batch: select with the selection, delete, children too."""

    path: Path = "database"

    def __init__(self, database: Database, selection: Selection) -> None:
        self.database = database
        self.selection = selection

    async def delete(self, limit: int) -> tuple[int, int, int]:
        import sqlalchemy as sa
        from prefect.server import models
        from prefect.server.schemas.filters import LogFilter, LogFilterFlowRunId

        db = self.database.db
        query = (
            sa.select(db.FlowRun.id)
            .where(self.selection.sql_condition(db))
            .order_by(db.FlowRun.end_time, db.FlowRun.id)
            .limit(limit)
        )
        if self.database.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        async with self.database.transaction() as session:
            ids = list((await session.execute(query)).scalars().all())
            if not ids:
                return 0, 0, 0
            delete_flow_runs: Any = models.flow_runs.delete_flow_runs
            delete_logs: Any = models.logs.delete_logs
            delete_artifact: Any = models.artifacts.delete_artifact
            deleted: list[UUID] = await delete_flow_runs(session=session, flow_run_ids=ids)
            # Logs and artifacts have no cascade from flow_run: remove them in the same
            # transaction, so a killed cleanup never leaves children of deleted runs.
            await delete_logs(
                session=session,
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=list(deleted))),
            )
            # Through Prefect's model, so artifact collections move to the latest survivor.
            artifacts = await session.execute(
                sa.select(db.Artifact.id).where(db.Artifact.flow_run_id.in_(deleted))
            )
            for artifact_id in artifacts.scalars().all():
                await delete_artifact(session=session, artifact_id=artifact_id)
        return len(deleted), 0, len(ids)


class _Api:
    """Read a batch, check each run against the selection, delete exactly those ids.

    A busy answer restarts the batch from the read, never re-sends a delete for
    runs that may have changed meanwhile (retried in the UI, tagged ``keep``).
    """

    def __init__(self, client: PrefectClient, selection: Selection) -> None:
        self.client = client
        self.selection = selection
        self.path: Path = "api-bulk"
        # Runs the server's filter matches but the selection refuses (protected tags
        # cannot be negated in a FlowRunFilter) or that failed to delete: skipped on
        # later reads. It grows with the number of protected runs in scope.
        self.refused: list[UUID] = []
        self.deleted = self.failed = 0

    async def delete(self, limit: int) -> tuple[int, int, int]:
        # Counted as they happen, so a batch restarted half-way never counts a run twice
        # nor forgets one: the approved count holds however often the server is busy.
        self.deleted = self.failed = 0
        seen = await _retrying(lambda: self._delete(limit - self.deleted - self.failed))
        return self.deleted, self.failed, seen

    async def _delete(self, limit: int) -> int:
        if limit <= 0:
            return 1  # a restarted batch that had already done its share: not "exhausted"
        while True:
            runs = await self.client.read_flow_runs(
                **self.selection.read_filters(exclude=self.refused),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=limit,
            )
            if not runs:
                return 0
            ids = [run.id for run in runs if self.selection.is_deletable(run)]
            self.refused.extend(run.id for run in runs if not self.selection.is_deletable(run))
            if ids:
                break  # else a page of protected runs: read on
        if self.path == "api-bulk":
            if await self._bulk(ids):
                return len(ids)
            self.path = "api-per-run"
            logger.info("this server has no POST /flow_runs/bulk_delete; deleting run by run")
        await self._one_by_one(ids)
        return len(ids)

    async def _bulk(self, ids: list[UUID]) -> bool:
        """``bulk_delete`` restricted to these ids, and again to the selection's states
        and cutoff, so the server re-checks what may have changed since the read."""
        only = self.selection.flow_run_filter(only=ids).model_dump(mode="json", exclude_unset=True)
        try:
            deleted = await api.bulk_delete_flow_runs(self.client, only, len(ids))
        except httpx.TransportError:
            # The server may have deleted them before the connection dropped: count
            # them as deleted, so the cleanup can only ever delete fewer than approved.
            self.deleted += len(ids)
            raise
        if deleted is None:
            return False  # a server without the endpoint
        self.deleted += len(deleted)
        return True

    async def _one_by_one(self, ids: list[UUID]) -> None:
        """Servers without ``bulk_delete``: re-read each run just before deleting it."""
        for flow_run_id in ids:
            try:
                await _retrying(partial(self._delete_one, flow_run_id))
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code in RETRYABLE:
                    raise
                self.failed += 1
                self.refused.append(flow_run_id)
                logger.warning(
                    "could not delete flow run %s: HTTP %s", flow_run_id, exc.response.status_code
                )

    async def _delete_one(self, flow_run_id: UUID) -> None:
        """Read, check, delete: a busy answer restarts here, at the read."""
        try:
            run = await self.client.read_flow_run(flow_run_id)
            if not self.selection.is_deletable(run):
                self.refused.append(flow_run_id)
                return
            await self.client.delete_flow_run(flow_run_id)
        except ObjectNotFound:
            pass  # already gone, which is the goal
        self.deleted += 1


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Back off on busy answers (a SQLite-backed server says 503) and dropped connections.

    The Prefect client already retries some of these; this outer loop covers the
    rest, so a busy server slows a cleanup down instead of failing it.
    """
    delay = 0.5
    for attempt in range(ATTEMPTS):
        try:
            return await call()
        except httpx.TransportError:
            if attempt == ATTEMPTS - 1:
                raise
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code not in RETRYABLE or attempt == ATTEMPTS - 1:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")
