"""The public API: what each package exports, listed in its ``__init__`` and held here.

A name leaves or joins a package's API on purpose, by changing this list with it.
Everything else is private to its package, whatever Python allows.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "triggers": [
        "AutomationSpec",
        "BlockSpec",
        "Bundle",
        "CATALOG",
        "Declared",
        "DocumentSpec",
        "ExitCode",
        "FixableError",
        "JanitorError",
        "Location",
        "Metric",
        "MetricTriggerSpec",
        "Mode",
        "OWNER_TAG",
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
    ],
    "triggers.metrics": [
        "CATALOG",
        "FIRING",
        "MEASURED",
        "Metric",
        "NoQuery",
        "Operator",
        "RESOLVED",
        "RULE_VARIABLE_PREFIX",
        "Rule",
        "RunCountQuery",
        "RunScope",
        "STATE_VARIABLE_PREFIX",
        "TableQuery",
        "UNAVAILABLE",
        "metric_resource",
    ],
    "triggers.spec": [
        "ActionSpec",
        "AutomationSpec",
        "BlockSpec",
        "DocumentSpec",
        "MetricTriggerSpec",
        "OWNER_TAG",
        "Resolver",
        "TemplateRef",
        "TriggerSpec",
        "spec_schema",
        "spec_schema_text",
    ],
    "triggers.render": ["Rendered", "check_templates", "preview"],
    "triggers.load": ["Bundle", "Declared", "load_bundle", "spec_files"],
    "triggers.sync": [
        "Mode",
        "Plan",
        "Say",
        "Step",
        "SyncOutcome",
        "Verb",
        "make_plan",
        "sync_automations",
    ],
    "flows": [
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
    ],
    "flows.archive": [
        "ArchiveIndex",
        "ArchiveWriter",
        "Folder",
        "FsspecStore",
        "Store",
        "active",
        "archived",
        "open_store",
    ],
    "flows.cleanup": [
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
    ],
    "flows.probe": [
        "Decision",
        "Measurement",
        "ProbeReport",
        "RuleState",
        "evaluate",
        "metric_probe",
    ],
    "flows.slack": ["SlackAppSettings", "create_app"],
    "flows.devstack": [
        "LocalServer",
        "Served",
        "SlackConsole",
        "Stack",
        "drop_missed_runs",
        "sqlite_url",
    ],
    "flows.history": ["BulkSeeded", "RunSpec", "bulk_seed", "make_history"],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_each_package_exports_exactly_its_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(PUBLIC[package])


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_public_name_resolves_to_an_object_of_its_package(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        home = getattr(value, "__module__", None)
        if home is not None and isinstance(value, type | type(len) | type(lambda: 0)):
            # Defined inside the package (a flow object's module is Prefect's).
            assert home.startswith(package.split(".")[0] + "."), f"{package}.{name}: {home}"


def test_an_unknown_name_is_an_attribute_error() -> None:
    triggers = importlib.import_module("triggers")
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = triggers.nope
