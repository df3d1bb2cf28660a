"""Trigger variants of the spec, each compiling to Prefect's own trigger model.

The union is discriminated the way Prefect's ``TriggerTypes`` is: an explicit
``type`` wins, otherwise ``triggers``/``require`` pick a composite and
everything else is an event trigger, so Prefect-style YAML loads unchanged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from prefect.events.schemas.automations import (
    CompoundTrigger,
    EventTrigger,
    Posture,
    SequenceTrigger,
)
from prefect.events.schemas.events import ResourceSpecification
from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from triggers.spec.metric import MetricTriggerSpec
from triggers.specmodel import SpecModel
from triggers.units import Duration


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[
    list[str],
    BeforeValidator(_as_list),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "One string or a list of strings.",
        }
    ),
]
ResourceLabels = dict[str, str | list[str]]


class EventTriggerSpec(SpecModel):
    """Fires on the presence (Reactive) or absence (Proactive) of matching events."""

    type: Literal["event"] = Field("event", description="The trigger variant.")
    match: ResourceLabels = Field(
        default_factory=dict,
        description="Labels of the event's resource, e.g. prefect.resource.id: prefect.flow-run.*",
    )
    match_related: ResourceLabels | list[ResourceLabels] = Field(
        default_factory=dict,
        description="Labels of a related resource, e.g. prefect.resource.role: flow.",
    )
    after: StrList = Field(
        default_factory=list,
        description="Events that must be seen first before this trigger can fire.",
    )
    expect: StrList = Field(
        default_factory=list,
        description="The events this trigger expects; trailing wildcards such as janitor.* work.",
    )
    for_each: StrList = Field(
        default_factory=list,
        description="Evaluate separately for each distinct value of these resource labels.",
    )
    posture: Literal["Reactive", "Proactive"] = Field(
        "Reactive",
        description="Reactive fires when events arrive; Proactive when they fail to arrive.",
    )
    threshold: int = Field(
        1,
        ge=0,
        description="How many events are needed to fire (Reactive) or expected (Proactive).",
    )
    within: Duration = Field(
        default_factory=lambda: timedelta(0),
        description="Time window for the threshold; at least 10s for Proactive triggers.",
    )

    def compile(self) -> EventTrigger:
        return EventTrigger(
            match=ResourceSpecification.model_validate(self.match),
            match_related=(
                [ResourceSpecification.model_validate(item) for item in self.match_related]
                if isinstance(self.match_related, list)
                else ResourceSpecification.model_validate(self.match_related)
            ),
            after=set(self.after),
            expect=set(self.expect),
            for_each=set(self.for_each),
            posture=Posture(self.posture),
            threshold=self.threshold,
            within=self.within,
        )

    def children(self) -> list[TriggerSpec]:
        return []


class _CompositeSpec(SpecModel):
    triggers: list[TriggerSpec] = Field(
        min_length=1, description="The triggers this one combines; any variant may nest."
    )
    within: Duration | None = Field(
        None, description="All required child firings must happen within this window."
    )

    def children(self) -> list[TriggerSpec]:
        return list(self.triggers)


class CompoundTriggerSpec(_CompositeSpec):
    """Fires when some number of its triggers have fired, in any order."""

    type: Literal["compound"] = Field("compound", description="The trigger variant.")
    require: int | Literal["any", "all"] = Field(
        description="How many child triggers must fire: any, all, or a number."
    )

    @field_validator("require", mode="before")
    @classmethod
    def _require_form(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) else None
        if text in ("any", "all"):
            return text
        if text is not None and text.isdigit():
            return int(text)
        count = len(info.data.get("triggers") or [])
        numbers = f"a number from 1 to {count}" if count else "a number of triggers"
        raise ValueError(f"must be any, all or {numbers} (got {value!r})")

    @model_validator(mode="after")
    def _require_fits(self) -> CompoundTriggerSpec:
        if isinstance(self.require, int) and not 1 <= self.require <= len(self.triggers):
            raise ValueError(
                f"require is {self.require} but there are {len(self.triggers)} triggers; "
                f"use a number from 1 to {len(self.triggers)}, 'any' or 'all'"
            )
        return self

    def compile(self) -> CompoundTrigger:
        return CompoundTrigger(
            triggers=[child.compile() for child in self.triggers],
            require=self.require,
            within=self.within,
        )


class SequenceTriggerSpec(_CompositeSpec):
    """Fires when its triggers fire in the order given."""

    type: Literal["sequence"] = Field("sequence", description="The trigger variant.")

    def compile(self) -> SequenceTrigger:
        return SequenceTrigger(
            triggers=[child.compile() for child in self.triggers], within=self.within
        )


def metric_triggers(trigger: Any) -> list[MetricTriggerSpec]:
    """The metric triggers in a trigger tree, depth first."""
    if isinstance(trigger, MetricTriggerSpec):
        return [trigger]
    return [found for child in trigger.children() for found in metric_triggers(child)]


def assign_rule_ids(trigger: Any, base: str, path: tuple[int, ...] = ()) -> None:
    """Default rule ids from the automation's name and the trigger's place in the tree.

    Stable across edits of thresholds or operators, so a changed threshold keeps
    the breach state the probe has on the server for that rule.
    """
    if isinstance(trigger, MetricTriggerSpec):
        suffix = "--" + "-".join(str(i) for i in path) if path else ""
        trigger._default_id = base + suffix
        return
    for index, child in enumerate(trigger.children()):
        assign_rule_ids(child, base, (*path, index))


def trigger_kind(value: Any) -> str:
    """Pick the variant as Prefect does, so Prefect-style YAML needs no ``type``."""
    if isinstance(value, dict):
        if "type" in value:
            return str(value["type"])
        if "triggers" in value:
            return "compound" if "require" in value else "sequence"
        return "event"
    return str(getattr(value, "type", "event"))


TriggerSpec = Annotated[
    Annotated[EventTriggerSpec, Tag("event")]
    | Annotated[CompoundTriggerSpec, Tag("compound")]
    | Annotated[SequenceTriggerSpec, Tag("sequence")]
    | Annotated[MetricTriggerSpec, Tag("metric")],
    Discriminator(
        trigger_kind,
        custom_error_type="unknown_trigger_type",
        custom_error_message="unknown trigger type; use event, compound, sequence or metric",
    ),
]
"""Every trigger a spec may declare; new variants join this union."""

CompoundTriggerSpec.model_rebuild()
SequenceTriggerSpec.model_rebuild()

__all__ = [
    "CompoundTriggerSpec",
    "EventTriggerSpec",
    "MetricTriggerSpec",
    "SequenceTriggerSpec",
    "TriggerSpec",
    "assign_rule_ids",
    "metric_triggers",
    "trigger_kind",
]
