"""Blocks declared with ``kind: block``: validated locally, compared and saved by sync.

Validation uses the block's own Prefect class, so a wrong field is a load
error with its line rather than a failed webhook call later. Secret fields
are known from the class's ``secret_fields`` and never leave this module in
clear text: plans show them as changed or unchanged, never their values.
"""

from __future__ import annotations

import contextlib
from functools import cache
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, ValidationError

from triggers.hints import did_you_mean
from triggers.specmodel import SpecModel

MASK = "********"


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


@cache
def _registry() -> dict[str, type[Block]]:
    # Importing registers the core block types; collections (prefect-slack, ...)
    # register themselves through Prefect's plugin loader.
    import prefect.blocks.notifications
    import prefect.blocks.system
    import prefect.blocks.webhook  # noqa: F401
    from prefect.plugins import load_prefect_collections
    from prefect.utilities.dispatch import get_registry_for_type

    with contextlib.suppress(Exception):  # a broken optional collection must not stop a sync
        load_prefect_collections()
    return dict(get_registry_for_type(Block) or {})


def block_class(slug: str) -> type[Block] | None:
    return _registry().get(slug)


def known_types() -> list[str]:
    return sorted(_registry())


def validate_block_data(spec: BlockSpec) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Problems as (path under data, message, hint); empty when valid."""
    cls = block_class(spec.type)
    if cls is None:
        hint = did_you_mean(spec.type, known_types()) or (
            "install the collection that provides it (e.g. pip install prefect-slack); "
            "known types: " + ", ".join(known_types())
        )
        return [(("type",), f"unknown block type {spec.type!r}", hint)]
    allowed = set(cls.model_fields) - {"block_type_slug"}
    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    for key in spec.data:
        if key not in allowed:
            problems.append(
                (
                    ("data", key),
                    f"unknown field {key!r} for block type {spec.type}",
                    did_you_mean(key, allowed) or "allowed: " + ", ".join(sorted(allowed)),
                )
            )
    if problems:
        return problems
    try:
        cls.model_validate(spec.data)
    except ValidationError as exc:
        for item in exc.errors(include_url=False):
            # The message never echoes the value: block data is where secrets live.
            loc = tuple(part for part in item["loc"] if part in spec.data or isinstance(part, int))
            where = ".".join(map(str, item["loc"]))
            problems.append((("data", *loc), f"data.{where}: {item['msg']}", ""))
    return problems


def block_kind_error(slug: str, *, webhook: bool) -> str | None:
    """Why a block of this type cannot serve the action, or None (also for unknown types)."""
    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.webhook import Webhook

    cls = block_class(slug)
    if cls is None:
        return None
    if webhook and not issubclass(cls, Webhook):
        return f"call-webhook needs a webhook block, but {slug!r} is not one"
    if not webhook and not issubclass(cls, NotificationBlock):
        return f"send-notification needs a notification block, but {slug!r} is not one"
    return None


def desired_data(spec: BlockSpec) -> dict[str, Any]:
    """The block's data with defaults filled in and secrets in clear, for comparing."""
    cls = block_class(spec.type)
    assert cls is not None, "validated at load time"
    return _dump(cls.model_validate(spec.data))


def normalized_server_data(spec: BlockSpec, data: dict[str, Any]) -> dict[str, Any] | None:
    """The server's copy run through the same class; None if it no longer validates."""
    cls = block_class(spec.type)
    assert cls is not None
    try:
        return _dump(cls.model_validate(data))
    except ValidationError:
        return None


def _dump(block: Block) -> dict[str, Any]:
    data = block.model_dump(mode="json", context={"include_secrets": True})
    data.pop("block_type_slug", None)
    return data


def secret_fields(spec: BlockSpec) -> set[str]:
    """Top-level fields whose values are secret (``headers.*`` counts as headers)."""
    cls = block_class(spec.type)
    if cls is None:
        return set()
    listed = cls.model_json_schema().get("secret_fields", [])
    return {str(name).split(".", 1)[0] for name in listed}


def build(spec: BlockSpec) -> Block:
    cls = block_class(spec.type)
    assert cls is not None
    return cls.model_validate(spec.data)
