"""The database-cleanup flow: preview, approval, deletion, an event at every step.

This is what the automations start. It takes the one cleanup slot, fixes the
cutoff and measures what it would delete, asks for approval (a person, an AI
reviewer, or nobody when the config says so), deletes in batches at most what
was approved, and reports. Every step emits a ``janitor.*`` event that the
notification automations turn into Slack messages.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from prefect import flow, get_client, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.orchestration import PrefectClient
from prefect.context import FlowRunContext
from pydantic import BaseModel, Field

from flows.cleanup.approval import Verdict, ask_human
from flows.cleanup.archiving import archive_store, plan_archive, require_database
from flows.cleanup.config import RetentionConfig
from flows.cleanup.delete_step import database_size, delete_step
from flows.cleanup.deletion import DeletionFailed
from flows.cleanup.manifest import make_manifest
from flows.cleanup.preview import Preview, TargetCount, count_targets, make_preview
from flows.cleanup.rules import resolve_policy
from flows.cleanup.summary import Summary, preview_markdown
from flows.cleanup.targets import Target
from flows.cleanup.targets.target import capped_rows
from flows.database import Database
from flows.errors import Busy
from flows.events import CleanupStep, StepEvents
from flows.lock import exclusive

DEFAULTS = RetentionConfig()  # human approval, 30 days, terminal states, "keep" protected


class CleanupOutcome(StrEnum):
    """How a cleanup ended."""

    DELETED = "deleted"
    DRY_RUN = "dry-run"
    NOTHING_TO_DO = "nothing-to-do"
    REJECTED = "rejected"
    TIMED_OUT = "timed-out"
    SKIPPED = "skipped"


class CleanupReport(BaseModel):
    """What a cleanup did; the flow run's result."""

    outcome: CleanupOutcome = Field(description="How the cleanup ended.")
    flow_run_id: UUID | None = Field(None, description="The cleanup's own flow run.")
    preview: Preview | None = Field(None, description="What it found to delete.")
    verdict: Verdict | None = Field(None, description="How the approval ended.")
    summary: Summary | None = Field(None, description="How the deletion went.")


@flow(
    name="database-cleanup",
    description="Preview, approve and delete old flow runs; announce every step.",
    retries=0,
)
async def database_cleanup(config: RetentionConfig = DEFAULTS) -> CleanupReport:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:  # pragma: no cover - Prefect guarantees it
        raise RuntimeError("database_cleanup must run as a Prefect flow")
    run = context.flow_run
    events = StepEvents(run.id, run.name, run.deployment_id)
    async with get_client() as client:
        try:
            async with exclusive(client, flow_run_id=run.id):
                report = await _cleanup(config, client, events, run.id)
        except Busy as busy:
            get_run_logger().warning("skipped: %s", busy)
            await events.emit(CleanupStep.SKIPPED, {"reason": str(busy)})
            report = CleanupReport(outcome=CleanupOutcome.SKIPPED)
        except DeletionFailed:
            raise  # already announced as janitor.deletion.failed
        except Exception as exc:
            await events.emit(CleanupStep.FAILED, {"error": f"{type(exc).__name__}: {exc}"})
            raise
    report.flow_run_id = run.id
    return report


async def _cleanup(
    config: RetentionConfig, client: PrefectClient, events: StepEvents, run_id: UUID
) -> CleanupReport:
    logger = get_run_logger()
    policy = await resolve_policy(config, client, deployment_id=events.deployment_id)
    selection = policy.default
    # Found even when deleting through the API: sizes and VACUUM need it too.
    database, why = await Database.find(run_id)
    deleter = database if config.deletion == "auto" else None
    if config.deletion == "api":
        why = "through the API (the config asks for it)"
    elif database is None:
        why = f"through the API: {why}"
    logger.info("cutoff %s; deleting %s", selection.cutoff.isoformat(), why)

    manifest, ruling = await make_manifest(policy, client, database)
    targets, counts = await count_targets(config, policy, deleter)
    for count in counts:
        if count.needs_database:
            logger.warning("%s need the database: %s", count.title, count.needs_database)
    preview = await make_preview(
        client,
        policy,
        ruling,
        manifest,
        config.retention_days,
        database=database,
        deleter=deleter,
        targets=counts,
    )
    approved = _approved_rows(targets, counts, config.max_rows)
    manifest = manifest.bind(f"{t.key}: {t!r} -> {approved[t.key]} rows" for t in targets)
    preview.manifest_hash = manifest.hash
    preview.database_bytes = await database_size(database)
    store = await archive_store(config.archive)
    preview.archive = await plan_archive(config.archive, store, manifest.made_at)
    markdown = preview_markdown(preview, config.dry_run)
    await acreate_markdown_artifact(
        key="janitor-cleanup-preview", markdown=markdown, description="What this cleanup found"
    )
    payload = {**preview.model_dump(mode="json"), "dry_run": config.dry_run}
    if preview.nothing_to_do:
        logger.info("nothing to clean: no rule lets anything go")
        await events.emit(CleanupStep.NOTHING_TO_DO, payload)
        return CleanupReport(outcome=CleanupOutcome.NOTHING_TO_DO, preview=preview)
    await events.emit(CleanupStep.PREVIEWED, payload)
    if config.dry_run:
        logger.info("dry run: would delete %d runs", preview.to_delete)
        return CleanupReport(outcome=CleanupOutcome.DRY_RUN, preview=preview)

    require_database(preview.archive, deleter)  # before anyone is asked
    verdict = await _approval(config, preview, markdown, events, client)
    if not verdict.approved:
        outcome = CleanupOutcome.TIMED_OUT if verdict.timed_out else CleanupOutcome.REJECTED
        return CleanupReport(outcome=outcome, preview=preview, verdict=verdict)

    summary = await delete_step(
        config,
        policy,
        manifest,
        targets,
        deleter,
        database,
        client,
        events,
        preview.archive,
        store,
        approved,
    )
    return CleanupReport(
        outcome=CleanupOutcome.DELETED, preview=preview, verdict=verdict, summary=summary
    )


def _approved_rows(
    targets: list[Target], counts: list[TargetCount], max_rows: int
) -> dict[str, int]:
    """Per other target, the rows of its own the approval covers: what the preview
    counted, at most ``max_rows``."""
    counted = {count.key: count.rows for count in counts}
    return {
        target.key: min(capped_rows(target, counted.get(target.key, {})), max_rows)
        for target in targets
    }


async def _approval(
    config: RetentionConfig,
    preview: Preview,
    markdown: str,
    events: StepEvents,
    client: PrefectClient,
) -> Verdict:
    facts = _facts(preview)
    if config.approval == "none":
        verdict = Verdict(
            approved=True, via="none", approver="config", approved_count=preview.to_delete
        )
        await events.emit(
            CleanupStep.APPROVAL_GRANTED, {**verdict.model_dump(mode="json"), **facts}
        )
        return verdict
    via = config.approval
    if via == "ai":
        await events.emit(
            CleanupStep.APPROVAL_REQUESTED, {"via": "ai", "model": config.ai.model, **facts}
        )
        verdict, handover = await _ask_ai(config, markdown, preview.to_delete, client)
        if handover is None:
            return await _announce(verdict, events, facts)
        get_run_logger().info("the AI reviewer handed over (%s); asking a human", handover)
        facts = {**facts, "escalated": handover}
    await events.emit(
        CleanupStep.APPROVAL_REQUESTED,
        {"via": "human", "timeout_seconds": config.approval_timeout_seconds, **facts},
    )
    verdict = await ask_human(markdown, config.approval_timeout_seconds, preview.to_delete)
    return await _announce(verdict, events, facts)


def _facts(preview: Preview) -> dict[str, Any]:
    """What every approval message shows about the deletion being decided."""
    return {
        "to_delete": preview.to_delete,
        "manifest_hash": preview.manifest_hash,
        "eligible": preview.eligible,
        "protected": preview.protected,
        "cutoff": preview.cutoff.isoformat(),
        "by_state": preview.by_state,
        "by_flow": [count.model_dump() for count in preview.by_flow[:5]],
        "oldest_end": preview.oldest_end.isoformat() if preview.oldest_end else None,
        "newest_end": preview.newest_end.isoformat() if preview.newest_end else None,
        "retention_days": preview.retention_days,
        "task_runs": preview.task_runs,
        "logs": preview.logs,
        "sample": [run.model_dump(mode="json") for run in preview.sample[:5]],
        "by_rule": [rule.model_dump() for rule in preview.by_rule]
        if len(preview.by_rule) > 1
        else [],
        "tables": [
            {"table": t.table, "rows": t.going_rows, "bytes": t.going_bytes}
            for t in preview.tables
            if t.going_rows
        ]
        or [{"table": table, "rows": rows} for table, rows in preview.rows_by_table().items()],
        "going_bytes": preview.going_bytes,
        "needs_database": [t.title for t in preview.targets if t.needs_database],
        "archive": preview.archive.line if preview.archive else "",
        "archive_enabled": bool(preview.archive and preview.archive.enabled),
        "archives_to_prune": len(preview.archive.prune) if preview.archive else 0,
    }


async def _announce(verdict: Verdict, events: StepEvents, facts: dict[str, Any]) -> Verdict:
    step = (
        CleanupStep.APPROVAL_GRANTED
        if verdict.approved
        else CleanupStep.APPROVAL_TIMED_OUT
        if verdict.timed_out
        else CleanupStep.APPROVAL_REJECTED
    )
    await events.emit(step, {**verdict.model_dump(mode="json"), **facts})
    return verdict


async def _ask_ai(
    config: RetentionConfig, markdown: str, to_delete: int, client: PrefectClient
) -> tuple[Verdict, str | None]:
    """The reviewer's verdict, and why it hands over to a person (unsure or failed), if it does."""
    from flows.cleanup.reviewer import review_cleanup

    review = await review_cleanup(markdown, config.ai, api_url=str(client.api_url))
    decision = review.decision
    verdict = Verdict(
        approved=review.verdict == "approved",
        via="ai",
        approver=review.model,
        confidence=decision.confidence if decision else None,
        reasoning=decision.reasoning if decision else "",
        concerns=list(decision.concerns) if decision else [],
        error=review.error or "",
        approved_count=to_delete if review.verdict == "approved" else 0,
    )
    if review.verdict != "escalate":
        return verdict, None
    if review.error or decision is None:
        return verdict, review.error or "the review gave no decision"
    leaning = "approve" if decision.approved else "reject"
    return verdict, (
        f"it would {leaning} with confidence {decision.confidence:.0%}, below the "
        f"{config.ai.min_confidence:.0%} it needs to decide alone"
    )
