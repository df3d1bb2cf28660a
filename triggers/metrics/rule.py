"""Metric rules as sync publishes them and the probe reads them.

Each rule lives in its own Prefect Variable (``janitor-metric-rule-<id>``,
tagged for ownership): a variable holds at most 5000 characters, so one per
rule keeps any number of rules possible, and a rule's edit is one small write.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from triggers.metrics.events import metric_resource
from triggers.units import Unit, human

Operator = Literal["<", "<=", ">", ">="]

RULE_VARIABLE_PREFIX = "janitor-metric-rule-"
STATE_VARIABLE_PREFIX = "janitor-metric-state-"

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Rule(BaseModel):
    """One metric trigger, flattened to what the probe needs to decide."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(description="The rule's stable id; its resource is janitor.metric.<id>.")
    automation: str = Field(description="The automation the rule belongs to.")
    metric: str = Field(description="The catalog metric measured.")
    query: dict[str, Any] = Field(default_factory=dict, description="The metric's filters.")
    operator: Operator = Field(description="How the value compares with the threshold.")
    threshold: float = Field(description="The limit, in the metric's base unit.")
    unit: Unit = Field(description="The metric's unit.")
    range_seconds: float = Field(0.0, description="Look-back window; 0 for snapshots.")
    firing_for_seconds: float = Field(0.0, description="How long a breach must hold.")
    repeat_after_seconds: float | None = Field(None, description="Re-fire period, if any.")

    @property
    def variable(self) -> str:
        return RULE_VARIABLE_PREFIX + self.id

    @property
    def state_variable(self) -> str:
        return STATE_VARIABLE_PREFIX + self.id

    @property
    def resource(self) -> str:
        """The resource of the rule's firing and resolved events."""
        return metric_resource(self.id)

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.range_seconds)

    @property
    def firing_for(self) -> timedelta:
        return timedelta(seconds=self.firing_for_seconds)

    @property
    def repeat_after(self) -> timedelta | None:
        if self.repeat_after_seconds is None:
            return None
        return timedelta(seconds=self.repeat_after_seconds)

    @property
    def measurement(self) -> tuple[str, str, float]:
        """What must be measured; rules sharing it share one measurement per probe run."""
        return (self.metric, json.dumps(self.query, sort_keys=True), self.range_seconds)

    @property
    def fingerprint(self) -> str:
        """Changes when what is measured changes; threshold edits keep the breach state."""
        return hashlib.sha256(repr(self.measurement).encode()).hexdigest()[:16]

    def breached(self, value: float) -> bool:
        return _COMPARE[self.operator](value, self.threshold)

    def describe(self) -> str:
        text = f"{self.metric} {self.operator} {human(self.threshold, self.unit)}"
        if self.range_seconds:
            text += f" over {human(self.range_seconds, Unit.SECONDS)}"
        if self.firing_for_seconds:
            text += f" for {human(self.firing_for_seconds, Unit.SECONDS)}"
        return text

    def published(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
