"""An automation as declared in YAML, compiled to Prefect's own ``AutomationCore``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from prefect.events.schemas.automations import AutomationCore
from pydantic import Field, PrivateAttr, field_validator, model_validator

from triggers.metrics.events import RESOLVED, metric_resource
from triggers.metrics.rule import Rule
from triggers.spec.action import ActionSpec
from triggers.spec.metric import MetricTriggerSpec, slug
from triggers.spec.resolver import Resolver
from triggers.spec.trigger import (
    EventTriggerSpec,
    StrList,
    TriggerSpec,
    assign_rule_ids,
    metric_triggers,
)
from triggers.specmodel import SpecModel

OWNER_TAG = "managed-by:prefect-janitor"
"""Sync creates, updates and deletes only automations carrying this tag."""

ACTION_LISTS = ("actions", "actions_on_trigger", "actions_on_resolve")


class AutomationSpec(SpecModel):
    """One automation, with the fields of Prefect's ``AutomationCore``."""

    kind: Literal["automation"] = Field(
        "automation", description="The document kind; automation is the default."
    )
    name: str = Field(min_length=1, description="Unique name; sync matches on it.")
    description: str = Field("", description="A longer description shown in the Prefect UI.")
    enabled: bool = Field(True, description="Whether the server evaluates this automation.")
    tags: StrList = Field(
        default_factory=list,
        description=f"Tags on the automation; sync adds {OWNER_TAG} to mark ownership.",
    )
    trigger: TriggerSpec = Field(description="When the automation fires.")
    actions: list[ActionSpec] = Field(description="What to do when the trigger fires.")
    actions_on_trigger: list[ActionSpec] = Field(
        default_factory=list, description="What to do when the automation enters Triggered."
    )
    actions_on_resolve: list[ActionSpec] = Field(
        default_factory=list,
        description="What to do when the automation resolves. With metric triggers, when a "
        "breach ends: sync moves these to a companion automation named "
        "'<name> (resolved)' on the probe's janitor.metric.resolved event, because the "
        "OSS server never resolves an event trigger by itself.",
    )
    owner_resource: None = Field(
        None,
        description="Accepted only as null, for YAML exported by the Prefect CLI: the server "
        "never returns it and cannot update it, so sync could not keep it in step. "
        f"Ownership is the {OWNER_TAG} tag.",
    )

    _resolves: str | None = PrivateAttr(None)
    """For a companion: the name of the automation whose metric breaches it resolves."""

    @model_validator(mode="after")
    def _name_metric_rules(self) -> AutomationSpec:
        assign_rule_ids(self.trigger, slug(self.name))
        return self

    @property
    def metric_triggers(self) -> list[MetricTriggerSpec]:
        return metric_triggers(self.trigger)

    def rules(self) -> list[Rule]:
        """The metric rules sync publishes for the probe, one per metric trigger."""
        return [trigger.rule(self.name) for trigger in self.metric_triggers]

    @property
    def resolves(self) -> str | None:
        return self._resolves

    def companion(self) -> AutomationSpec | None:
        """The automation that runs ``actions_on_resolve`` when a metric breach ends.

        It fires when any of this automation's metric rules resolves: for one
        metric that is the end of its breach; for ``all`` of several, the first
        one to end is the end of the condition.
        """
        rules = self.metric_triggers
        if not rules or not self.actions_on_resolve:
            return None
        companion = AutomationSpec(
            name=f"{self.name} (resolved)",
            description=f"Runs the actions_on_resolve of {self.name!r} when its metric "
            "breach ends. Managed by sync with that automation.",
            enabled=self.enabled,
            tags=self.tags,
            trigger=EventTriggerSpec(
                expect=[RESOLVED],
                match={"prefect.resource.id": [metric_resource(rule.rule_id) for rule in rules]},
            ),
            actions=self.actions_on_resolve,
        )
        companion._resolves = self.name
        return companion

    @field_validator("owner_resource", mode="before")
    @classmethod
    def _no_owner_resource(cls, value: object) -> None:
        if value is not None:
            raise ValueError(
                "owner_resource cannot be kept in sync (the server neither returns nor "
                f"updates it); remove it, sync marks ownership with the {OWNER_TAG} tag"
            )
        return

    def compile(self, resolver: Resolver) -> AutomationCore:
        """Prefect's own model, ready for the API; raises nothing for unknown names
        (the resolver records them) so one pass finds every problem."""
        compiled = {
            field: [
                action.compile(resolver, (field, index))
                for index, action in enumerate(getattr(self, field))
            ]
            for field in ACTION_LISTS
        }
        if self.metric_triggers:
            compiled["actions_on_resolve"] = []  # run by the companion automation
        return AutomationCore(
            name=self.name,
            description=self.description,
            enabled=self.enabled,
            tags=sorted({*self.tags, OWNER_TAG}),
            trigger=self.trigger.compile(),
            **compiled,
        )

    def all_actions(self) -> Iterator[tuple[tuple[str, int], ActionSpec]]:
        for field in ACTION_LISTS:
            for index, action in enumerate(getattr(self, field)):
                yield (field, index), action
