"""prefect-janitor's automation spec, metric triggers and sync engine.

The public API is listed here; everything else is private to the package.
"""

from triggers.automation import OWNER_TAG, AutomationSpec, BlockSpec, DocumentSpec
from triggers.errors import (
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
from triggers.loader import Bundle, Declared, load_bundle
from triggers.metric import MetricTriggerSpec
from triggers.metrics import CATALOG, Metric, MetricUnavailable
from triggers.plan import Plan, Step, Verb, make_plan
from triggers.rules import Rule
from triggers.sync import Mode, Outcome, sync
from triggers.trigger import TriggerSpec

__all__ = [
    "CATALOG",
    "OWNER_TAG",
    "AutomationSpec",
    "BlockSpec",
    "Bundle",
    "Declared",
    "DocumentSpec",
    "JanitorError",
    "Location",
    "Metric",
    "MetricTriggerSpec",
    "MetricUnavailable",
    "Mode",
    "Outcome",
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
    "TriggerSpec",
    "Verb",
    "load_bundle",
    "make_plan",
    "sync",
]
