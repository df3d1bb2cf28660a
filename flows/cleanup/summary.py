"""What people read in the Prefect UI: the preview, the live progress, the summary."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from flows.cleanup.deletion import DeletionProgress
from flows.cleanup.preview import Preview
from triggers.units import Unit, human


class Summary(BaseModel):
    """How a deletion went; the payload of ``janitor.deletion.completed``/``failed``."""

    approved: int = Field(description="Runs approved for deletion.")
    deleted: int = Field(description="Runs of the manifest deleted.")
    skipped: int = Field(0, description="Runs of the manifest that no longer qualified, or gone.")
    failed: int = Field(description="Runs whose delete failed.")
    unconfirmed: int = Field(0, description="Runs asked for whose deletion no answer confirmed.")
    duration_seconds: float = Field(description="Wall time of the deletion.")
    runs_per_second: float = Field(description="deleted / duration.")
    path: str = Field(description="database, api-bulk or api-per-run.")
    bytes_before: int | None = Field(None, description="Database size before, when measurable.")
    bytes_after: int | None = Field(None, description="Database size after, when measurable.")
    bytes_freed: int | None = Field(None, description="before - after, when both are known.")
    rows: dict[str, int] = Field(
        default_factory=dict,
        description="Rows deleted per table, every target included: what each table lost.",
    )
    vacuum: str = Field("", description="The VACUUM statement run afterwards, if any.")
    error: str = Field("", description="Why the deletion stopped, when it failed.")
    archive: str = Field("", description="Where the deleted rows were archived; empty: nowhere.")
    archives_pruned: int = Field(0, description="Archives past their age removed, as approved.")

    @classmethod
    def of(cls, progress: DeletionProgress, **extra: object) -> Summary:
        return cls(
            approved=progress.target,
            deleted=progress.deleted,
            skipped=progress.skipped,
            failed=progress.failed,
            unconfirmed=progress.unconfirmed,
            duration_seconds=round(progress.elapsed_seconds, 3),
            runs_per_second=round(progress.runs_per_second, 1),
            path=progress.path,
            rows=dict(progress.rows),
            **extra,
        )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _size(value: int | None) -> str:
    """Bytes as a person reads them, in binary units: 1.5 KiB, 10.0 MiB."""
    return "-" if value is None else human(value, Unit.BYTES)


def preview_markdown(preview: Preview, dry_run: bool = False) -> str:
    heading = "Dry run: would delete" if dry_run else "Would delete"
    capped = (
        f" (capped at {preview.max_runs:,}; {preview.eligible:,} eligible)"
        if preview.to_delete < preview.eligible
        else f" (capped at {preview.max_runs:,}; more are eligible: the next cleanup)"
        if preview.more_eligible
        else ""
    )
    lines = [
        f"## {heading} {preview.to_delete:,} flow runs{capped}",
        "",
        f"Manifest `{preview.manifest_hash}`: exactly these runs, fixed now; an approval "
        "lets only them go, and only those that still qualify then.",
        "",
        preview.archive.line if preview.archive else "Archive: none.",
        *(
            f"- prune archive `{old.name}` ({old.rows:,} rows, made {_when(old.made_at)})"
            for old in (preview.archive.prune if preview.archive else [])
        ),
        "",
        f"Runs in {', '.join(s.title() for s in preview.states)} that ended before "
        f"**{_when(preview.cutoff)}** (retention {preview.retention_days:g} days).",
        f"Kept because of a protected tag ({', '.join(preview.protected_tags) or 'none'}): "
        f"{preview.protected:,}.",
        f"End times from {_when(preview.oldest_end)} to {_when(preview.newest_end)}.",
        f"With them go about {preview.task_runs:,} task runs and {preview.logs:,} log lines.",
        f"Database size now: {_size(preview.database_bytes)}.",
    ]
    if preview.scope:
        scope = "; ".join(f"{key}: {', '.join(values)}" for key, values in preview.scope.items())
        lines.append(f"Scope: {scope}.")
    lines += ["", "| State | Runs |", "|---|---:|"]
    lines += [f"| {state.title()} | {count:,} |" for state, count in preview.by_state.items()]
    lines += ["", "| Flow | Runs |", "|---|---:|"]
    lines += [f"| {count.name} | {count.runs:,} |" for count in preview.by_flow]
    if preview.by_deployment:
        lines += ["", "| Deployment | Runs |", "|---|---:|"]
        lines += [f"| {count.name} | {count.runs:,} |" for count in preview.by_deployment]
    if len(preview.by_rule) > 1:
        lines += ["", "| Rule | Decided for | Lets go | Protected | Kept as newest |"]
        lines += ["|---|---:|---:|---:|---:|"]
        lines += [
            f"| {rule.name} | {rule.matched:,} | {rule.runs:,} | {rule.protected:,} | "
            f"{rule.kept_by_count:,} |"
            for rule in preview.by_rule
        ]
    if preview.sample:
        lines += ["", "First runs to go:", "", "| Run | Flow | State | Ended | Tags | Rule |"]
        lines += ["|---|---|---|---|---|---|"]
        lines += [
            f"| {run.name} | {run.flow} | {run.state} | {_when(run.end_time)} | "
            f"{', '.join(run.tags)} | {run.rule} |"
            for run in preview.sample
        ]
    for target in preview.targets:
        if target.needs_database:
            lines += [
                "",
                f"**{target.title.capitalize()}**: not from here; {target.needs_database}.",
            ]
        else:
            going = ", ".join(f"{n:,} {table}" for table, n in target.rows.items()) or "nothing"
            capped = " (more than max_rows: the rest next time)" if target.capped else ""
            lines += ["", f"**{target.title.capitalize()}**: {going}{capped}."]
    if preview.tables:
        lines += ["", "| Table | Rows going | Bytes going (est.) | Rows now | Size now |"]
        lines += ["|---|---:|---:|---:|---:|"]
        lines += [
            f"| {t.table} | {t.going_rows:,} | {_size(t.going_bytes)} "
            f"| {t.rows:,} | {_size(t.bytes)} |"
            for t in preview.tables
        ]
        lines.append(
            f"| all | | {_size(preview.going_bytes)} | | {_size(preview.database_bytes)} |"
        )
    return "\n".join(lines)


def summary_markdown(summary: Summary) -> str:
    lines = [
        f"## Deleted {summary.deleted:,} of {summary.approved:,} approved flow runs",
        "",
        "| | |",
        "|---|---:|",
        f"| Deleted | {summary.deleted:,} |",
        f"| Skipped (changed since the preview, or gone) | {summary.skipped:,} |",
        f"| Failed | {summary.failed:,} |",
        f"| Duration | {summary.duration_seconds:.1f} s |",
        f"| Speed | {summary.runs_per_second:.0f} runs/s ({summary.path}) |",
        f"| Database before | {_size(summary.bytes_before)} |",
        f"| Database after | {_size(summary.bytes_after)} |",
    ]
    if summary.vacuum:
        lines.append(f"| Reclaimed with | {summary.vacuum} |")
    if summary.unconfirmed:
        lines.append(
            f"| Asked for, not confirmed (server stopped answering) | {summary.unconfirmed:,} |"
        )
    if summary.archive:
        lines.append(f"| Archived to | {summary.archive} |")
    if summary.archives_pruned:
        lines.append(f"| Old archives pruned | {summary.archives_pruned:,} |")
    if summary.rows:
        lines += ["", "| Table | Rows deleted |", "|---|---:|"]
        lines += [f"| {table} | {count:,} |" for table, count in summary.rows.items()]
    if summary.error:
        lines += ["", f"Stopped: {summary.error}"]
    return "\n".join(lines)
