"""The metric contract shared by the spec, sync and the probe: leaves only.

What can be measured (the catalog, with units and query models), the rules
sync publishes for the probe, and the events the probe emits. How each
metric is measured lives with the probe (``flows.probe.measures``).
"""

from triggers.metrics.catalog import CATALOG, Metric
from triggers.metrics.events import FIRING, MEASURED, RESOLVED, UNAVAILABLE, metric_resource
from triggers.metrics.queries import NoQuery, RunCountQuery, RunScope, TableQuery
from triggers.metrics.rule import RULE_VARIABLE_PREFIX, STATE_VARIABLE_PREFIX, Operator, Rule

__all__ = [
    "CATALOG",
    "FIRING",
    "MEASURED",
    "RESOLVED",
    "RULE_VARIABLE_PREFIX",
    "STATE_VARIABLE_PREFIX",
    "UNAVAILABLE",
    "Metric",
    "NoQuery",
    "Operator",
    "Rule",
    "RunCountQuery",
    "RunScope",
    "TableQuery",
    "metric_resource",
]
