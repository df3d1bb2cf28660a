"""The metric catalog: what the probe can measure, by name.

Each metric is a small class (name, unit, description, query, measurement);
``CATALOG`` is the one list the spec validates against and the probe reads.
"""

from __future__ import annotations

from triggers.metrics.base import DatabaseAccess, Metric, MetricUnavailable, NoQuery, Source
from triggers.metrics.database import DatabaseSize, TableRows
from triggers.metrics.performance import FlowRunDuration, FlowRunLateness, FlowRunSuccessRate
from triggers.metrics.runs import FlowRunCount, TaskRunCount

CATALOG: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        DatabaseSize(),
        TableRows(),
        FlowRunCount(),
        TaskRunCount(),
        FlowRunLateness(),
        FlowRunDuration(),
        FlowRunSuccessRate(),
    )
}

__all__ = [
    "CATALOG",
    "DatabaseAccess",
    "Metric",
    "MetricUnavailable",
    "NoQuery",
    "Source",
]
