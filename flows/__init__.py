"""prefect-janitor's flows: what runs on a worker, and what serves or seeds it.

The public API is listed here (and guarded by ``tests/test_public_api.py``):
the two deployed flows and what they take and return. Inside, one concept per
folder: ``cleanup``, ``archive`` (what a cleanup keeps, and the restore),
``probe``, ``slack``, ``devstack`` (the local stack, never imported by the
deployed flows), ``history`` (seeding, a leaf), and
what they share: ``events``, ``lock``, ``errors``, ``database``; ``serve``
serves both deployments.

Names load on first use, so a probe run imports only the probe.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.cleanup import CleanupOutcome, CleanupReport, RetentionConfig, database_cleanup
    from flows.cleanup.deletion import DeletionFailed
    from flows.errors import (
        AnswerRefused,
        ArchiveError,
        Busy,
        CleanupError,
        MetricUnavailable,
        RequestRefused,
        RestoreRefused,
        ScopeError,
        ServeFailed,
        ServerFailedToStart,
        SignatureError,
        SlackError,
        SlackSetupError,
        StackError,
    )
    from flows.probe import ProbeReport, metric_probe

_EXPORTS = {
    "CleanupOutcome": "flows.cleanup",
    "CleanupReport": "flows.cleanup",
    "RetentionConfig": "flows.cleanup",
    "database_cleanup": "flows.cleanup",
    "DeletionFailed": "flows.cleanup.deletion",
    "AnswerRefused": "flows.errors",
    "ArchiveError": "flows.errors",
    "Busy": "flows.errors",
    "CleanupError": "flows.errors",
    "MetricUnavailable": "flows.errors",
    "RequestRefused": "flows.errors",
    "RestoreRefused": "flows.errors",
    "ScopeError": "flows.errors",
    "ServeFailed": "flows.errors",
    "ServerFailedToStart": "flows.errors",
    "SignatureError": "flows.errors",
    "SlackError": "flows.errors",
    "SlackSetupError": "flows.errors",
    "StackError": "flows.errors",
    "ProbeReport": "flows.probe",
    "metric_probe": "flows.probe",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "AnswerRefused",
    "ArchiveError",
    "Busy",
    "CleanupError",
    "CleanupOutcome",
    "CleanupReport",
    "DeletionFailed",
    "MetricUnavailable",
    "ProbeReport",
    "RequestRefused",
    "RestoreRefused",
    "RetentionConfig",
    "ScopeError",
    "ServeFailed",
    "ServerFailedToStart",
    "SignatureError",
    "SlackError",
    "SlackSetupError",
    "StackError",
    "database_cleanup",
    "metric_probe",
]
