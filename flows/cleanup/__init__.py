"""The database-cleanup flow and its parts.

The config and its retention policy (``config``, ``policy``), the safety
rules (``selection``), which runs each rule lets go (``rules``) fixed as a
manifest (``manifest``), the other targets (``targets``), what a person is
shown (``preview``, ``sizes``), who says yes (``approval``, ``reviewer``),
the deleting (``deletion``, with every batch archived first: ``archiving``,
``flows.archive``), the approved step carried out (``delete_step``) and what
is reported (``summary``); ``flow`` ties them together, announcing every
step through ``flows.events``.
"""

from flows.cleanup.approval import ApprovalForm, Verdict, answer, waiting
from flows.cleanup.config import AISettings, ArchiveSettings, RetentionConfig
from flows.cleanup.flow import CleanupOutcome, CleanupReport, database_cleanup
from flows.cleanup.policy import (
    EventRule,
    FlowRunRule,
    OrphanRetention,
    RunMatch,
    TaskRunRetention,
)
from flows.cleanup.preview import Preview

__all__ = [
    "AISettings",
    "ApprovalForm",
    "ArchiveSettings",
    "CleanupOutcome",
    "CleanupReport",
    "EventRule",
    "FlowRunRule",
    "OrphanRetention",
    "Preview",
    "RetentionConfig",
    "RunMatch",
    "TaskRunRetention",
    "Verdict",
    "answer",
    "database_cleanup",
    "waiting",
]
