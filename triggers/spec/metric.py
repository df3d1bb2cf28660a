"""The ``metric`` trigger: a threshold on a measured value, for the Prefect OSS server.

The OSS server refuses metric triggers (they are Prefect Cloud's, and even
there only lateness, duration and successes exist). Here a metric trigger is
two things: a *rule* that sync publishes for the metric-probe flow, which
measures and decides, and an ordinary event trigger on the probe's
``janitor.metric.firing`` event for the rule's own resource. The probe emits
``firing`` once per breach episode, so the automation acts once, not on every
probe tick, and it works anywhere an event trigger does (inside compound and
sequence triggers too).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from triggers.hints import did_you_mean
from triggers.metrics.catalog import CATALOG, Metric
from triggers.metrics.events import FIRING, metric_resource
from triggers.metrics.rule import Operator, Rule
from triggers.specmodel import SpecModel
from triggers.units import Duration, Unit, examples, parse_quantity

DEFAULT_RANGE = timedelta(hours=1)
RULE_ID = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"


def slug(name: str) -> str:
    """An automation name as the default rule id: lowercase words joined by one dash."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80].strip("-") or "rule"


class MetricTriggerSpec(SpecModel):
    """Fires when a measured value crosses ``threshold`` and stays there for ``firing_for``."""

    type: Literal["metric"] = Field(description="The trigger variant.")
    id: str | None = Field(
        None,
        pattern=RULE_ID,
        max_length=120,
        description="A stable id for the rule and its state on the server. Defaults to the "
        "automation's name (plus the trigger's place inside a compound or sequence); set "
        "it to keep the state when renaming the automation.",
    )
    metric: str = Field(
        description="What to measure: " + ", ".join(CATALOG) + ". See the catalog in the README."
    )
    query: dict[str, Any] = Field(
        default_factory=dict,
        validate_default=True,
        description="Filters for the metric, e.g. states: [COMPLETED] and older_than: 30d "
        "for flow_runs.count, or table: log for database.table_rows.",
    )
    operator: Operator = Field(">", description="How the value compares with the threshold.")
    threshold: Annotated[
        float,
        WithJsonSchema(
            {"anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*(-?\d|\$\{)"}]}
        ),
    ] = Field(
        description="The limit, in the metric's unit; human units work: 2 GiB, 50k, 30d, 95%."
    )
    range: Duration | None = Field(
        None,
        description="How far back a windowed metric (lateness, duration, success rate) "
        "looks; 1h when not set.",
    )
    firing_for: Duration = Field(
        default_factory=lambda: timedelta(0),
        description="How long the breach must hold, over successive probe runs, before firing.",
    )
    repeat_after: Duration | None = Field(
        None,
        description="Fire again while the breach persists, at most this often (for a "
        "cleanup that was rejected). Unset: once per breach episode.",
    )

    _default_id: str | None = PrivateAttr(None)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in CATALOG:
            hint = did_you_mean(value, set(CATALOG)) or "metrics: " + ", ".join(CATALOG)
            raise ValueError(f"{value!r} is not a metric of the catalog; {hint}")
        return value

    @field_validator("query")
    @classmethod
    def _query_fits_metric(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        metric = _metric(info)
        if metric is None:
            return value
        try:
            parsed = metric.query_model.model_validate(value)
        except ValidationError as exc:
            faults = "; ".join(
                f"query.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            fields = ", ".join(metric.query_model.model_fields) or "none"
            raise ValueError(f"{faults} (query fields of {metric.name}: {fields})") from None
        return parsed.model_dump(mode="json", exclude_defaults=True)

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_in_unit(cls, value: Any, info: ValidationInfo) -> float:
        metric = _metric(info)
        unit = metric.unit if metric is not None else Unit.COUNT
        if metric is None and isinstance(value, str):
            raise ValueError("fix the metric name first; the threshold's unit depends on it")
        return parse_quantity(value, unit)

    @model_validator(mode="after")
    def _range_fits_metric(self) -> MetricTriggerSpec:
        metric = CATALOG[self.metric]
        if self.range is not None and not metric.windowed:
            windowed = ", ".join(m.name for m in CATALOG.values() if m.windowed)
            hint = " (use query.older_than to count old runs)" if "runs" in self.metric else ""
            raise ValueError(
                f"range applies to windowed metrics only ({windowed}); "
                f"{self.metric} is a snapshot, remove range{hint}"
            )
        if self.range is not None and self.range <= timedelta(0):
            raise ValueError("range must be longer than zero, e.g. 1h")
        if self.repeat_after is not None and self.repeat_after <= timedelta(0):
            raise ValueError("repeat_after must be longer than zero, e.g. 6h; or remove it")
        if metric.unit == Unit.PERCENT and not 0 <= self.threshold <= 100:
            raise ValueError(
                f"a percent threshold is between 0 and 100, e.g. {examples(Unit.PERCENT)}"
            )
        return self

    @property
    def rule_id(self) -> str:
        rule_id = self.id or self._default_id
        if rule_id is None:
            raise RuntimeError("a metric trigger outside an automation has no rule id")
        return rule_id

    @property
    def window(self) -> timedelta:
        if not CATALOG[self.metric].windowed:
            return timedelta(0)
        return self.range or DEFAULT_RANGE

    def compile(self) -> EventTrigger:
        return EventTrigger(
            match=ResourceSpecification.model_validate(
                {"prefect.resource.id": metric_resource(self.rule_id)}
            ),
            expect={FIRING},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        )

    def rule(self, automation: str) -> Rule:
        """The rule sync publishes for the probe, flattened to what it needs to decide."""
        return Rule(
            id=self.rule_id,
            automation=automation,
            metric=self.metric,
            query=self.query,
            operator=self.operator,
            threshold=self.threshold,
            unit=CATALOG[self.metric].unit,
            range_seconds=self.window.total_seconds(),
            firing_for_seconds=self.firing_for.total_seconds(),
            repeat_after_seconds=(
                self.repeat_after.total_seconds() if self.repeat_after is not None else None
            ),
        )

    def children(self) -> list[Any]:
        return []

    def query_key(self) -> str:
        return json.dumps(self.query, sort_keys=True, separators=(",", ":"))


def _metric(info: ValidationInfo) -> Metric | None:
    name = info.data.get("metric")
    return CATALOG.get(name) if isinstance(name, str) else None
