"""The database-cleanup flow and its parts.

Config and policy (``config``), which runs may go (``selection``), what a
person is shown (``preview``), who says yes (``approval``, ``reviewer``), the
deleting (``deletion``) and what is reported (``summary``); ``flow`` ties
them together, announcing every step through ``flows.events``.
"""

from flows.cleanup.approval import ApprovalForm, Verdict, answer, waiting
from flows.cleanup.config import AISettings, RetentionConfig
from flows.cleanup.flow import CleanupOutcome, CleanupReport, database_cleanup
from flows.cleanup.preview import Preview

__all__ = [
    "AISettings",
    "ApprovalForm",
    "CleanupOutcome",
    "CleanupReport",
    "Preview",
    "RetentionConfig",
    "Verdict",
    "answer",
    "database_cleanup",
    "waiting",
]
