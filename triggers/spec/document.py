"""Any document a spec file may hold: an automation (the default kind) or a block."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Tag

from triggers.spec.automation import AutomationSpec
from triggers.spec.blocks import BlockSpec


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
