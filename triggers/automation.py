"""The top-level documents of a spec file: automations and the blocks they use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from prefect.events.schemas.automations import AutomationCore
from pydantic import Discriminator, Field, Tag, field_validator

from triggers.action import ActionSpec, Resolver
from triggers.base import SpecModel
from triggers.trigger import StrList, TriggerSpec

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
        default_factory=list, description="What to do when the automation resolves."
    )
    owner_resource: None = Field(
        None,
        description="Accepted only as null, for YAML exported by the Prefect CLI: the server "
        "never returns it and cannot update it, so sync could not keep it in step. "
        f"Ownership is the {OWNER_TAG} tag.",
    )

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


class BlockSpec(SpecModel):
    """A block the automations need, created or updated by sync before them.

    Values come from ``${ENV}`` references; secret fields (the webhook URL,
    headers) are stored as Prefect secrets and never printed.
    """

    kind: Literal["block"] = Field(description="The document kind.")
    type: str = Field(
        description="The block type slug, e.g. webhook, slack-webhook, secret.",
        pattern=r"^[a-z0-9-]+$",
    )
    name: str = Field(
        description="The block name: lowercase letters, digits and dashes.",
        pattern=r"^[a-z0-9-]+$",
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="The block's fields, e.g. url: ${SLACK_WEBHOOK_URL}.",
        repr=False,
    )

    @property
    def reference(self) -> str:
        return f"{self.type}/{self.name}"


def document_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "automation"))
    return str(getattr(value, "kind", "automation"))


DocumentSpec = Annotated[
    Annotated[AutomationSpec, Tag("automation")] | Annotated[BlockSpec, Tag("block")],
    Discriminator(
        document_kind,
        custom_error_type="unknown_document_kind",
        custom_error_message="unknown kind; use automation (the default) or block",
    ),
]
"""Any document a spec file may hold."""
