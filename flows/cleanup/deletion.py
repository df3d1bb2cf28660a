"""Deleting the approved runs: members of the manifest only, in batches, counted exactly.

The manifest (``flows.cleanup.manifest``) is what the approval named; each
batch is a slice of it, and of a slice only the runs that still qualify
(``Selection``) go, so a run that changed since the preview stays, a subflow
freed by its parent's deletion is never taken, and nothing outside the
manifest can be, however often the server is busy or an answer is lost.

Two paths share one loop. In-process (``Database``) a batch is re-selected by
id with the selection's conditions and deleted, with its logs and artifacts,
in one locking transaction without a statement timeout; a SQLite lock held by
another writer, or a dropped connection, is waited out and the batch tried
again. Through the API a batch is read, checked, and deleted with ``POST
/flow_runs/bulk_delete`` restricted to those ids and the selection's states and
cutoff (per-run deletes on servers without it); then the batch is read again,
and a run counts as deleted only when it was asked for and is gone. The count
never comes from the server's answer, which a lost response re-sent by the
client reports as ``deleted: []``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from pydantic import BaseModel, Field

from flows.cleanup.manifest import Manifest
from flows.cleanup.selection import Selection
from flows.database import Database
from flows.errors import CleanupError
from triggers import api
from triggers.errors import ExitCode

API_BATCH_LIMIT = 50  # the server's BULK_OPERATION_LIMIT on 3.8
RETRYABLE = {429, 502, 503, 504}
PATIENCE_SECONDS = 180.0
"""How long one batch waits out a busy, locked or restarting server before failing."""

Path = Literal["database", "api-bulk", "api-per-run"]
logger = get_logger("janitor.deletion")
T = TypeVar("T")


class DeletionProgress(BaseModel):
    """Where a deletion stands; sent as events and shown as an artifact."""

    target: int = Field(description="How many runs were approved for deletion (the manifest).")
    deleted: int = Field(0, description="Runs of the manifest this cleanup deleted.")
    skipped: int = Field(
        0, description="Runs of the manifest left alone: changed since the preview, or gone."
    )
    failed: int = Field(0, description="Runs the server would not delete.")
    unconfirmed: int = Field(
        0,
        description="Runs asked for whose fate no answer confirmed: the server stopped "
        "answering before the batch could be read again. At most this many more are gone.",
    )
    elapsed_seconds: float = Field(0.0, description="Seconds since the deletion started.")
    path: Path = Field("api-bulk", description="How the runs are being deleted.")

    @property
    def done(self) -> int:
        return self.deleted + self.skipped + self.failed

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.target) if self.target else 1.0

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


@dataclass
class _Counted:
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    unconfirmed: int = 0


class _BatchFailed(Exception):
    """A batch stopped part-way; ``counted`` is what is known of it."""

    def __init__(self, counted: _Counted, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.counted = counted


async def delete_runs(
    selection: Selection,
    manifest: Manifest,
    *,
    client: PrefectClient,
    database: Database | None = None,
    batch_size: int = 500,
    on_progress: OnProgress | None = None,
) -> DeletionProgress:
    """Delete the runs of ``manifest`` that still qualify, oldest first; say how it went."""
    started = time.monotonic()
    progress = DeletionProgress(target=len(manifest), path="database" if database else "api-bulk")
    deleter = _Api(client, selection) if database is None else _InProcess(database, selection)
    size = batch_size if database is not None else min(batch_size, API_BATCH_LIMIT)
    for ids in manifest.batches(size):
        try:
            counted = await deleter.delete(ids)
        except _BatchFailed as failure:
            _add(progress, failure.counted)
            progress.elapsed_seconds = time.monotonic() - started
            raise DeletionFailed(str(failure), progress) from failure.__cause__
        except Exception as exc:
            progress.elapsed_seconds = time.monotonic() - started
            raise DeletionFailed(f"{type(exc).__name__}: {exc}", progress) from exc
        _add(progress, counted)
        progress.path = deleter.path
        progress.elapsed_seconds = time.monotonic() - started
        await _report(on_progress, progress)
    progress.elapsed_seconds = time.monotonic() - started
    return progress


def _add(progress: DeletionProgress, counted: _Counted) -> None:
    progress.deleted += counted.deleted
    progress.skipped += counted.skipped
    progress.failed += counted.failed
    progress.unconfirmed += counted.unconfirmed


async def _report(on_progress: OnProgress | None, progress: DeletionProgress) -> None:
    """Progress reporting is a courtesy: a failure there never stops a deletion."""
    if on_progress is None:
        return
    try:
        result = on_progress(progress.model_copy())
        if result is not None:
            await result
    except Exception as exc:
        logger.warning("could not report progress (%s: %s)", type(exc).__name__, exc)


class _InProcess:
    """One locking transaction per batch: re-select by id, delete, children too."""

    path: Path = "database"

    def __init__(self, database: Database, selection: Selection) -> None:
        self.database = database
        self.selection = selection

    async def delete(self, ids: list[UUID]) -> _Counted:
        deleted = await _patiently(lambda: self._delete(ids), _database_trouble)
        return _Counted(deleted=deleted, skipped=len(ids) - deleted)

    async def _delete(self, ids: list[UUID]) -> int:
        import sqlalchemy as sa
        from prefect.server import models
        from prefect.server.schemas.filters import LogFilter, LogFilterFlowRunId

        db = self.database.db
        query = sa.select(db.FlowRun.id).where(
            db.FlowRun.id.in_(ids), self.selection.sql_condition(db)
        )
        if self.database.dialect == "postgresql":
            query = query.with_for_update()  # wait for, never skip, a run someone else holds
        async with self.database.transaction() as session:
            qualifying = list((await session.execute(query)).scalars().all())
            if not qualifying:
                return 0
            delete_flow_runs: Any = models.flow_runs.delete_flow_runs
            delete_logs: Any = models.logs.delete_logs
            delete_artifact: Any = models.artifacts.delete_artifact
            deleted: list[UUID] = await delete_flow_runs(session=session, flow_run_ids=qualifying)
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
        return len(deleted)


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


def _database_trouble(exc: BaseException) -> bool:
    """A lock held by another writer, a connection lost or refused: worth waiting out.

    A batch's transaction commits whole or not at all, so trying it again is safe.
    """
    from sqlalchemy.exc import DBAPIError, OperationalError

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


class _Api:
    """Read a batch, check each run, delete exactly those ids, then read again to count."""

    def __init__(self, client: PrefectClient, selection: Selection) -> None:
        self.client = client
        self.selection = selection
        self.path: Path = "api-bulk"

    async def delete(self, ids: list[UUID]) -> _Counted:
        asked: set[UUID] = set()
        failure: Exception | None = None
        try:
            await _patiently(lambda: self._ask(ids, asked), _api_trouble)
        except Exception as exc:
            failure = exc
        try:
            left = await _patiently(lambda: self._read(ids), _api_trouble)
        except Exception as exc:
            raise _BatchFailed(_Counted(unconfirmed=len(asked)), failure or exc) from (
                failure or exc
            )
        deleted = len(asked - set(left))
        if failure is not None:
            raise _BatchFailed(_Counted(deleted=deleted), failure) from failure
        # Asked for but still there: refused by the server's own re-check (the run changed
        # in between), or not deleted; only the second is a failure.
        failed = sum(1 for run_id in asked & set(left) if self.selection.is_deletable(left[run_id]))
        return _Counted(deleted=deleted, skipped=len(ids) - deleted - failed, failed=failed)

    async def _read(self, ids: list[UUID]) -> dict[UUID, FlowRun]:
        runs = await self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
        )
        return {run.id: run for run in runs}

    async def _ask(self, ids: list[UUID], asked: set[UUID]) -> None:
        """One attempt: what is left of the batch and still qualifies is asked for.

        A retried attempt reads again, so a run that changed meanwhile (retried in the
        UI, tagged ``keep``) is not asked for, and one already gone is not either.
        """
        present = await self._read(ids)
        wanted = [run_id for run_id, run in present.items() if self.selection.is_deletable(run)]
        if not wanted:
            return
        asked.update(wanted)
        if self.path == "api-bulk":
            only = self.selection.flow_run_filter(only=wanted).model_dump(
                mode="json", exclude_unset=True
            )
            if await api.bulk_delete_flow_runs(self.client, only, len(wanted)) is not None:
                return
            self.path = "api-per-run"
            logger.info("this server has no POST /flow_runs/bulk_delete; deleting run by run")
        for run_id in wanted:
            # One by one, each waited out on its own: a busy answer does not send the
            # batch back to its start.
            await _patiently(partial(self._delete_one, run_id), _api_trouble)

    async def _delete_one(self, run_id: UUID) -> None:
        with suppress(ObjectNotFound):  # gone already: the re-read counts it
            await self.client.delete_flow_run(run_id)


def _api_trouble(exc: BaseException) -> bool:
    """A busy server (503 on SQLite), a restart, a dropped connection: worth waiting out."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in RETRYABLE


async def _patiently(
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
