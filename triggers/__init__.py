"""prefect-janitor's automation spec, metric triggers and sync engine.

The public API is listed here (and guarded by ``tests/test_public_api.py``);
everything else is private to the package. Inside, one concept per folder,
data flowing one way: ``sync`` > ``load`` > ``render`` > ``spec`` >
``metrics`` > the leaves (``errors``, ``units``, ``hints``, ``specmodel``,
``api``).

Names load on first use, so the probe, which needs only ``metrics``, does not
import the sync engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from triggers.errors import (
        ExitCode,
        FixableError,
        JanitorError,
        Location,
        Problem,
        ServerAuthError,
        ServerFailed,
        ServerRejected,
        ServerUnreachable,
        SpecError,
        SyncError,
    )
    from triggers.load import Bundle, Declared, load_bundle
    from triggers.metrics import CATALOG, Metric, Rule
    from triggers.spec import (
        OWNER_TAG,
        AutomationSpec,
        BlockSpec,
        DocumentSpec,
        MetricTriggerSpec,
        TriggerSpec,
    )
    from triggers.sync import Mode, Plan, Step, SyncOutcome, Verb, make_plan, sync_automations

_EXPORTS = {
    "ExitCode": "triggers.errors",
    "FixableError": "triggers.errors",
    "JanitorError": "triggers.errors",
    "Location": "triggers.errors",
    "Problem": "triggers.errors",
    "ServerAuthError": "triggers.errors",
    "ServerFailed": "triggers.errors",
    "ServerRejected": "triggers.errors",
    "ServerUnreachable": "triggers.errors",
    "SpecError": "triggers.errors",
    "SyncError": "triggers.errors",
    "Bundle": "triggers.load",
    "Declared": "triggers.load",
    "load_bundle": "triggers.load",
    "CATALOG": "triggers.metrics",
    "Metric": "triggers.metrics",
    "Rule": "triggers.metrics",
    "OWNER_TAG": "triggers.spec",
    "AutomationSpec": "triggers.spec",
    "BlockSpec": "triggers.spec",
    "DocumentSpec": "triggers.spec",
    "MetricTriggerSpec": "triggers.spec",
    "TriggerSpec": "triggers.spec",
    "Mode": "triggers.sync",
    "Plan": "triggers.sync",
    "Step": "triggers.sync",
    "SyncOutcome": "triggers.sync",
    "Verb": "triggers.sync",
    "make_plan": "triggers.sync",
    "sync_automations": "triggers.sync",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = [
    "CATALOG",
    "OWNER_TAG",
    "AutomationSpec",
    "BlockSpec",
    "Bundle",
    "Declared",
    "DocumentSpec",
    "ExitCode",
    "FixableError",
    "JanitorError",
    "Location",
    "Metric",
    "MetricTriggerSpec",
    "Mode",
    "Plan",
    "Problem",
    "Rule",
    "ServerAuthError",
    "ServerFailed",
    "ServerRejected",
    "ServerUnreachable",
    "SpecError",
    "Step",
    "SyncError",
    "SyncOutcome",
    "TriggerSpec",
    "Verb",
    "load_bundle",
    "make_plan",
    "sync_automations",
]
