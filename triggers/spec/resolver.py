"""What turns the names in a spec into the ids Prefect's actions need."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from triggers.errors import PathKey


class Resolver(Protocol):
    """Turns names into ids: against a live server in sync (``ServerResolver``), with
    stand-in ids when a bundle is checked before any server is asked."""

    def deployment(self, name: str, where: PathKey) -> UUID: ...
    def block(self, name: str, where: PathKey) -> UUID: ...
    def automation(self, name: str, where: PathKey) -> UUID: ...
    def work_pool(self, name: str, where: PathKey) -> UUID: ...
    def work_queue(self, name: str, where: PathKey) -> UUID: ...
    def parameters(self, deployment: str, parameters: dict[str, Any], where: PathKey) -> None: ...
