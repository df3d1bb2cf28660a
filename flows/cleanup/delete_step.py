"""The approved cleanup carried out: archive and delete, batch by batch, then report.

Everything after the approval: the manifest's age is checked (an approval
of a list too old to trust is refused), the deletion is announced, the
archive is opened, the runs and then the other targets are deleted with
every batch archived before it commits (``flows.cleanup.deletion``,
``flows.archive``), archives past their age are pruned as approved, the disk
is reclaimed if asked, and the report goes out as an event and an artifact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    aupdate_progress_artifact,
)
from prefect.client.orchestration import PrefectClient

from flows.archive import ArchiveWriter, Store
from flows.archive.prune import prune
from flows.cleanup.archiving import ArchivePlan, open_writer
from flows.cleanup.config import RetentionConfig
from flows.cleanup.deletion import DeletionFailed, DeletionProgress, delete_runs, delete_targets
from flows.cleanup.manifest import Manifest
from flows.cleanup.rules import Policy
from flows.cleanup.summary import Summary, summary_markdown
from flows.cleanup.targets import Target
from flows.database import Database
from flows.errors import CleanupError
from flows.events import CleanupStep, StepEvents, Throttle

PROGRESS_EVERY_SECONDS = 3.0


async def delete_step(
    config: RetentionConfig,
    policy: Policy,
    manifest: Manifest,
    targets: list[Target],
    deleter: Database | None,
    database: Database | None,
    client: PrefectClient,
    events: StepEvents,
    plan: ArchivePlan,
    store: Store | None,
    approved_rows: dict[str, int],
) -> Summary:
    """Carry out an approved cleanup: announce, archive and delete each batch, prune
    old archives, report. A manifest older than the config allows is refused."""
    logger = get_run_logger()
    _check_age(manifest, config.manifest_lifetime_seconds)
    approved = len(manifest)
    before = await database_size(database)
    archive = await open_writer(store, deleter, manifest.hash, events.flow_run_id)
    await events.emit(
        CleanupStep.DELETION_STARTED,
        {
            "approved": approved,
            "manifest_hash": manifest.hash,
            "cutoff": policy.default.cutoff.isoformat(),
            "targets": [target.key for target in targets],
            "path": "database" if deleter else "api",
            "archive": archive.where if archive else "none",
        },
    )
    artifact = None
    try:
        artifact = await acreate_progress_artifact(
            progress=0.0, key="janitor-cleanup-progress", description="Flow runs deleted, percent"
        )
    except Exception as exc:  # a missing artifact must not stop an approved deletion
        logger.warning("no progress artifact (%s)", exc)
    throttle = Throttle(PROGRESS_EVERY_SECONDS)

    async def report(progress: DeletionProgress) -> None:
        on_runs = progress.current == "flow runs"
        if not throttle.ready() and not (on_runs and progress.done >= approved):
            return
        if on_runs:
            logger.info("deleted %d of %d runs", progress.deleted, approved)
        else:
            logger.info("%s: deleted so far %s", progress.current, _rows(progress.rows))
        await events.emit(CleanupStep.DELETION_PROGRESS, _progress_payload(progress))
        if artifact is not None:
            await aupdate_progress_artifact(artifact, round(progress.fraction * 100, 1))

    try:
        progress = await delete_runs(
            policy,
            manifest,
            client=client,
            database=deleter,
            batch_size=config.batch_size,
            batch_seconds=config.batch_seconds,
            on_progress=report,
            archive=archive,
        )
        if targets and database is not None:
            progress = await delete_targets(
                targets,
                database,
                progress,
                batch_size=config.batch_size,
                batch_seconds=config.batch_seconds,
                max_rows=config.max_rows,
                on_progress=report,
                archive=archive,
                approved=approved_rows,
            )
    except DeletionFailed as failure:
        summary = Summary.of(
            failure.progress,
            bytes_before=before,
            error=str(failure),
            archive=await _close(archive, complete=False),
        )
        await events.emit(CleanupStep.DELETION_FAILED, summary)
        await _summary_artifact(summary)
        raise
    vacuum = ""
    if config.reclaim_disk and database is not None:
        try:
            vacuum = await database.vacuum()
        except Exception as exc:  # the runs are gone either way; say so and carry on
            vacuum = f"failed: {type(exc).__name__}: {exc}"
            logger.warning("reclaiming disk %s", vacuum)
    archived = await _close(archive, complete=True)
    pruned = await _prune(plan, store)
    after = await database_size(database)
    freed = before - after if before is not None and after is not None else None
    summary = Summary.of(
        progress,
        bytes_before=before,
        bytes_after=after,
        bytes_freed=freed,
        vacuum=vacuum,
        archive=archived,
        archives_pruned=pruned,
    )
    if config.reclaim_disk and database is None:
        logger.info("reclaim_disk asked, but the database is not reachable from here")
    logger.info(
        "deleted %d runs (%d failed) in %.1f s, %.0f runs/s",
        summary.deleted,
        summary.failed,
        summary.duration_seconds,
        summary.runs_per_second,
    )
    await events.emit(CleanupStep.DELETION_COMPLETED, summary)
    await _summary_artifact(summary)
    return summary


async def _summary_artifact(summary: Summary) -> None:
    """The report in the UI; the runs are gone (or kept) either way, so a server that
    cannot take the artifact right now does not make the cleanup fail."""
    try:
        await acreate_markdown_artifact(
            key="janitor-cleanup-summary", markdown=summary_markdown(summary)
        )
    except Exception as exc:
        get_run_logger().warning("no summary artifact (%s: %s)", type(exc).__name__, exc)


async def database_size(database: Database | None) -> int | None:
    if database is None:
        return None
    try:
        return await database.size_bytes()
    except Exception as exc:  # a figure for the report, never a reason to fail
        get_run_logger().warning("could not measure the database (%s)", exc)
        return None


def _progress_payload(progress: DeletionProgress) -> dict[str, Any]:
    return {
        **progress.model_dump(mode="json"),
        "percent": round(progress.fraction * 100, 1),
        "runs_per_second": round(progress.runs_per_second, 1),
    }


def _rows(rows: dict[str, int]) -> str:
    return ", ".join(f"{count} {table}" for table, count in rows.items()) or "nothing"


def _check_age(manifest: Manifest, lifetime_seconds: int) -> None:
    age = (datetime.now(UTC) - manifest.made_at).total_seconds()
    if age > lifetime_seconds:
        raise CleanupError(
            f"the approved manifest {manifest.hash} was made {age:.0f} s ago, more than the "
            f"{lifetime_seconds} s a manifest is trusted; nothing was deleted",
            "run the cleanup again for a fresh preview and approval, or raise "
            "manifest_max_age_seconds",
        )


async def _close(archive: ArchiveWriter | None, *, complete: bool) -> str:
    """Where the archive is, once its index has the counts; a failure to update the
    index loses nothing (every batch file is already written), so it is only logged."""
    if archive is None:
        return ""
    try:
        if complete:
            await archive.close()
        else:
            await archive.checkpoint()
    except Exception as exc:
        get_run_logger().warning("could not update the archive's index (%s)", exc)
    return archive.where


async def _prune(plan: ArchivePlan, store: Store | None) -> int:
    """The approved expired archives go once the deletion has succeeded."""
    if store is None or not plan.prune:
        return 0
    try:
        return await prune(store, plan.prune)
    except Exception as exc:  # the deletion is done; say so, and leave the archives
        get_run_logger().warning("could not prune old archives (%s: %s)", type(exc).__name__, exc)
        return 0
