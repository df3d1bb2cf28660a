"""Deleting the approved runs: members of the manifest only, in batches, counted exactly.

The manifest (``flows.cleanup.manifest``) is what the approval named; each
batch is a slice of it, and of a slice only the runs that still qualify under
the rule that let each go (``Policy.still_goes``) go, so a run that changed
since the preview stays, a subflow freed by its parent's deletion is never
taken, and nothing outside the manifest can be, however often the server is
busy or an answer is lost. After the flow runs, ``delete_targets`` takes the
policy's other targets (``flows.cleanup.targets``) batch by batch.

Two paths share one loop. In-process (``Database``) a batch is re-selected by
id with its rules' conditions and deleted, with every row that goes with it
(``targets.flow_runs``), in one locking transaction without a statement
timeout, counted per table; a SQLite lock held by
another writer, or a dropped connection, is waited out and the batch tried
again. Through the API a batch is read, checked, and deleted with ``POST
/flow_runs/bulk_delete`` restricted to those ids and their rule's states and
cutoff (per-run deletes on servers without it); then the batch is read again,
and a run counts as deleted only when it was asked for and is gone. The count
never comes from the server's answer, which a lost response re-sent by the
client reports as ``deleted: []``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import partial

from prefect.client.orchestration import PrefectClient
from prefect.logging import get_logger
from pydantic import BaseModel, Field

from flows.archive import ArchiveWriter
from flows.cleanup.deleters import (
    API_BATCH_LIMIT,
    Counted,
    InProcess,
    Path,
    ThroughApi,
    _BatchFailed,
)
from flows.cleanup.manifest import Manifest
from flows.cleanup.pace import Pace
from flows.cleanup.patience import database_trouble, patiently
from flows.cleanup.rules import Policy
from flows.cleanup.targets.target import Target, capped_rows
from flows.database import Database
from flows.errors import CleanupError
from triggers.errors import ExitCode

logger = get_logger("janitor.deletion")


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
    rows: dict[str, int] = Field(
        default_factory=dict,
        description="Rows deleted per table: the runs, and what went with them.",
    )
    current: str = Field("flow runs", description="The target being deleted now.")
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


async def delete_runs(
    policy: Policy,
    manifest: Manifest,
    *,
    client: PrefectClient,
    database: Database | None = None,
    batch_size: int = 500,
    batch_seconds: float = 0.0,
    on_progress: OnProgress | None = None,
    archive: ArchiveWriter | None = None,
) -> DeletionProgress:
    """Delete the runs of ``manifest`` that still qualify, oldest first; say how it went.
    With an ``archive``, every batch's rows are archived before it commits.

    In-process, batches after the first are sized to take about ``batch_seconds``
    (``flows.cleanup.pace``); through the API every batch is ``batch_size``, at most
    the server's cap."""
    started = time.monotonic()
    progress = DeletionProgress(target=len(manifest), path="database" if database else "api-bulk")
    deleter = ThroughApi(client, policy) if database is None else InProcess(database, policy)
    if database is None:
        pace = Pace(min(batch_size, API_BATCH_LIMIT))
    else:
        pace = Pace(batch_size, batch_seconds)
    last = len(policy.rules) - 1
    position = 0
    while position < len(manifest):
        batch = manifest.batch(position, pace.size)
        position += len(batch)
        by_rule = {run_id: last if rule is None else rule for run_id, rule in batch}
        began = time.monotonic()
        try:
            with _archiving(archive, "flow_runs"):
                counted = await deleter.delete(by_rule)
        except _BatchFailed as failure:
            _add(progress, failure.counted)
            progress.elapsed_seconds = time.monotonic() - started
            raise DeletionFailed(str(failure), progress) from failure.__cause__
        except Exception as exc:
            progress.elapsed_seconds = time.monotonic() - started
            raise DeletionFailed(f"{type(exc).__name__}: {exc}", progress) from exc
        pace.took(time.monotonic() - began, full=len(batch) == pace.size)
        _add(progress, counted)
        progress.path = deleter.path
        progress.elapsed_seconds = time.monotonic() - started
        await _report(on_progress, progress)
    progress.elapsed_seconds = time.monotonic() - started
    return progress


async def delete_targets(
    targets: Sequence[Target],
    database: Database,
    progress: DeletionProgress,
    *,
    batch_size: int = 500,
    batch_seconds: float = 0.0,
    max_rows: int = 1_000_000,
    on_progress: OnProgress | None = None,
    archive: ArchiveWriter | None = None,
    approved: dict[str, int] | None = None,
) -> DeletionProgress:
    """After the flow runs: each other target, batch by batch, until it has nothing
    left that qualifies or ``max_rows`` of its table went (or the rows ``approved``
    for it, by key). Adds to ``progress``.
    Batches start at ``batch_size`` runs' worth of rows and are sized to take about
    ``batch_seconds`` (``flows.cleanup.pace``)."""
    started = time.monotonic() - progress.elapsed_seconds
    for target in targets:
        progress.current = target.title
        pace = Pace(batch_size * target.batch_scale, batch_seconds)
        # Never more of its own rows than were approved: rows that came to qualify
        # since the preview (a run deleted by hand leaving orphans) wait for the next.
        limit = min(max_rows, (approved or {}).get(target.key, max_rows))
        taken = 0
        while taken < limit:
            size = min(pace.size, limit - taken)
            began = time.monotonic()
            try:
                with _archiving(archive, target.key):
                    rows = await patiently(
                        partial(target.delete_batch, database, size), database_trouble
                    )
            except Exception as exc:
                progress.elapsed_seconds = time.monotonic() - started
                raise DeletionFailed(
                    f"{target.title}: {type(exc).__name__}: {exc}", progress
                ) from exc
            if rows is None:
                break
            went = capped_rows(target, rows)
            pace.took(time.monotonic() - began, full=size == pace.size and went >= size)
            taken += went
            _add(progress, Counted(rows=rows))
            progress.elapsed_seconds = time.monotonic() - started
            await _report(on_progress, progress)
    progress.elapsed_seconds = time.monotonic() - started
    return progress


def _archiving(archive: ArchiveWriter | None, key: str) -> AbstractContextManager[None]:
    return nullcontext() if archive is None else archive.target(key)


def _add(progress: DeletionProgress, counted: Counted) -> None:
    progress.deleted += counted.deleted
    progress.skipped += counted.skipped
    progress.failed += counted.failed
    progress.unconfirmed += counted.unconfirmed
    for table, rows in counted.rows.items():
        progress.rows[table] = progress.rows.get(table, 0) + rows


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
