"""The probe's events: their names and the resource each rule's events are about.

The contract between a compiled metric trigger (an event trigger on
``janitor.metric.firing`` for ``janitor.metric.<rule-id>``), the probe that
emits, and the notification templates that read the payloads.
"""

from __future__ import annotations

FIRING = "janitor.metric.firing"
"""A breach held for ``firing_for``: once per episode, again every ``repeat_after``."""
RESOLVED = "janitor.metric.resolved"
"""A breach that fired has ended."""
MEASURED = "janitor.metric.measured"
"""One per metric measured by a probe run."""
UNAVAILABLE = "janitor.metric.unavailable"
"""A metric could not be measured; its rules neither fire nor resolve."""
RESOURCE_PREFIX = "janitor.metric."


def metric_resource(rule_id: str) -> str:
    """The resource id of a rule's firing and resolved events."""
    return f"{RESOURCE_PREFIX}{rule_id}"
