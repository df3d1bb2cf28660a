"""What people read in the Prefect UI: sizes in the units Slack and the README use."""

from __future__ import annotations

from datetime import UTC, datetime

from flows.cleanup.deletion import DeletionProgress
from flows.cleanup.preview import Preview
from flows.cleanup.summary import Summary, preview_markdown, summary_markdown


def test_sizes_are_in_binary_units_and_labelled_so() -> None:
    preview = Preview(
        cutoff=datetime(2026, 11, 1, tzinfo=UTC),
        retention_days=30,
        states=["COMPLETED"],
        scope={},
        protected_tags=["keep"],
        matching=3,
        protected=0,
        eligible=3,
        to_delete=3,
        max_runs=10,
        by_state={"COMPLETED": 3},
        by_flow=[],
        by_deployment=[],
        oldest_end=None,
        newest_end=None,
        sample=[],
        task_runs=0,
        logs=0,
        database_bytes=1536,
    )
    assert "Database size now: 1.5 KiB." in preview_markdown(preview)
    summary = Summary.of(
        DeletionProgress(target=12_000, deleted=12_000, rows={"log": 60_000}, elapsed_seconds=1.0),
        bytes_before=3 * 1024**3,
        bytes_after=10 * 1024**2,
    )
    text = summary_markdown(summary)
    assert "| Database before | 3.0 GiB |" in text
    assert "| Database after | 10.0 MiB |" in text
    assert "## Deleted 12,000 of 12,000 approved flow runs" in text
    assert "| log | 60,000 |" in text
    assert " KB" not in text
    assert " MB" not in text
