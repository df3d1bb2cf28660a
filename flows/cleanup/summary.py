"""What people read in the Prefect UI: the preview, the live progress, the summary."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from flows.cleanup.deletion import DeletionProgress
from flows.cleanup.preview import Preview


class Summary(BaseModel):
    """How a deletion went; the payload of ``janitor.deletion.completed``/``failed``."""

    approved: int = Field(description="Runs approved for deletion.")
    deleted: int = Field(description="Runs deleted.")
    failed: int = Field(description="Runs whose delete failed.")
    duration_seconds: float = Field(description="Wall time of the deletion.")
    runs_per_second: float = Field(description="deleted / duration.")
    path: str = Field(description="database, api-bulk or api-per-run.")
    bytes_before: int | None = Field(None, description="Database size before, when measurable.")
    bytes_after: int | None = Field(None, description="Database size after, when measurable.")
    bytes_freed: int | None = Field(None, description="before - after, when both are known.")
    vacuum: str = Field("", description="The VACUUM statement run afterwards, if any.")
    error: str = Field("", description="Why the deletion stopped, when it failed.")

    @classmethod
    def of(cls, progress: DeletionProgress, **extra: object) -> Summary:
        return cls(
            approved=progress.target,
            deleted=progress.deleted,
            failed=progress.failed,
            duration_seconds=round(progress.elapsed_seconds, 3),
            runs_per_second=round(progress.runs_per_second, 1),
            path=progress.path,
            **extra,
        )


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def preview_markdown(preview: Preview, dry_run: bool = False) -> str:
    heading = "Dry run: would delete" if dry_run else "Would delete"
    capped = (
        f" (capped at {preview.max_runs}; {preview.eligible} eligible)"
        if preview.to_delete < preview.eligible
        else ""
    )
    lines = [
        f"## {heading} {preview.to_delete} flow runs{capped}",
        "",
        f"Runs in {', '.join(s.title() for s in preview.states)} that ended before "
        f"**{_when(preview.cutoff)}** (retention {preview.retention_days:g} days).",
        f"Kept because of a protected tag ({', '.join(preview.protected_tags) or 'none'}): "
        f"{preview.protected}.",
        f"End times from {_when(preview.oldest_end)} to {_when(preview.newest_end)}.",
        f"With them go about {preview.task_runs} task runs and {preview.logs} log lines.",
        f"Database size now: {_size(preview.database_bytes)}.",
    ]
    if preview.scope:
        scope = "; ".join(f"{key}: {', '.join(values)}" for key, values in preview.scope.items())
        lines.append(f"Scope: {scope}.")
    lines += ["", "| State | Runs |", "|---|---:|"]
    lines += [f"| {state.title()} | {count} |" for state, count in preview.by_state.items()]
    lines += ["", "| Flow | Runs |", "|---|---:|"]
    lines += [f"| {count.name} | {count.runs} |" for count in preview.by_flow]
    if preview.by_deployment:
        lines += ["", "| Deployment | Runs |", "|---|---:|"]
        lines += [f"| {count.name} | {count.runs} |" for count in preview.by_deployment]
    if preview.sample:
        lines += ["", "First runs to go:", "", "| Run | Flow | State | Ended | Tags |"]
        lines += ["|---|---|---|---|---|"]
        lines += [
            f"| {run.name} | {run.flow} | {run.state} | {_when(run.end_time)} | "
            f"{', '.join(run.tags)} |"
            for run in preview.sample
        ]
    return "\n".join(lines)


def summary_markdown(summary: Summary) -> str:
    lines = [
        f"## Deleted {summary.deleted} of {summary.approved} approved flow runs",
        "",
        "| | |",
        "|---|---:|",
        f"| Deleted | {summary.deleted} |",
        f"| Failed | {summary.failed} |",
        f"| Duration | {summary.duration_seconds:.1f} s |",
        f"| Speed | {summary.runs_per_second:.0f} runs/s ({summary.path}) |",
        f"| Database before | {_size(summary.bytes_before)} |",
        f"| Database after | {_size(summary.bytes_after)} |",
    ]
    if summary.vacuum:
        lines.append(f"| Reclaimed with | {summary.vacuum} |")
    if summary.error:
        lines += ["", f"Stopped: {summary.error}"]
    return "\n".join(lines)
