"""Notification actions of the spec: a message through a block (Slack, email, webhook).

A block is named ``type-slug/name`` (or given by id); the message is a Jinja
string, a template file, or for a webhook a mapping sent as JSON.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from prefect.events import actions as prefect_actions
from pydantic import Field, model_validator

from triggers.errors import PathKey
from triggers.spec.resolver import Resolver
from triggers.spec.template import (
    Payload,
    TemplateRef,
    TemplateText,
    json_payload_template,
    looks_like_json,
    text_of,
)
from triggers.specmodel import SpecModel


class _BlockTarget(SpecModel):
    block: str | None = Field(
        None,
        description="The block as block-type-slug/block-name, e.g. webhook/janitor-slack.",
        pattern=r"^[^/]+/[^/]+$",
    )
    block_document_id: UUID | None = Field(None, description="The block's id, instead of a name.")

    @model_validator(mode="after")
    def _one_block(self) -> _BlockTarget:
        if (self.block is None) == (self.block_document_id is None):
            raise ValueError(
                "name the block with `block: type-slug/name` (or `block_document_id:`), "
                "exactly one of them"
            )
        return self

    def _block_id(self, resolver: Resolver, where: PathKey) -> UUID:
        if self.block is not None:
            return resolver.block(self.block, (*where, "block"))
        assert self.block_document_id is not None
        return self.block_document_id

    def references(self) -> list[tuple[str, str]]:
        return [("block", self.block)] if self.block is not None else []


class SendNotificationSpec(_BlockTarget):
    """Sends a message through a notification block (Slack, email, ...)."""

    type: Literal["send-notification"] = Field(description="The action variant.")
    subject: TemplateText = Field(
        "Prefect automated notification",
        description="Subject line: a Jinja string or {template: templates/NAME.j2}.",
    )
    body: TemplateText = Field(
        description="Message body: a Jinja string or {template: templates/NAME.j2}."
    )

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.SendNotification(
            block_document_id=self._block_id(resolver, where),
            subject=text_of(self.subject),
            body=text_of(self.body),
        )

    def templates(self) -> list[tuple[str, TemplateText, bool]]:
        return [("subject", self.subject, False), ("body", self.body, False)]


class CallWebhookSpec(_BlockTarget):
    """Calls a Webhook block with a templated payload (e.g. Slack Block Kit JSON)."""

    type: Literal["call-webhook"] = Field(description="The action variant.")
    payload: Payload = Field(
        "",
        description="Body sent to the webhook: a Jinja string, a mapping (sent as JSON), "
        "or {template: templates/NAME.json.j2}.",
    )

    @property
    def payload_text(self) -> str:
        if isinstance(self.payload, dict):
            return json_payload_template(self.payload)
        return text_of(self.payload)

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.CallWebhook(
            block_document_id=self._block_id(resolver, where), payload=self.payload_text
        )

    def templates(self) -> list[tuple[str, TemplateText, bool]]:
        if isinstance(self.payload, dict):
            return [("payload", self.payload_text, True)]
        return [("payload", self.payload, _payload_is_json(self.payload))]


def _payload_is_json(payload: TemplateText) -> bool:
    if isinstance(payload, TemplateRef):
        return False  # decided once the file is read, by the loader
    return looks_like_json(payload)
