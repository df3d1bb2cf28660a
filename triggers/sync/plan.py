"""The plan: what sync would do to each object, and why (made by ``planner``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from triggers.sync.compare import Change

if TYPE_CHECKING:
    from triggers.load.bundle import Declared


class Verb(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    DELETE = "delete"
    ORPHAN = "orphan"
    CONFLICT = "conflict"


@dataclass
class Step:
    """One object and what will happen to it."""

    kind: str  # "automation" | "block" | "rule"
    name: str
    verb: Verb
    changes: list[Change] = field(default_factory=list)
    server_id: UUID | None = None
    note: str = ""
    declared: Declared[Any] | None = field(default=None, repr=False)
    desired: Any = field(default=None, repr=False)
    """For a rule: the value sync will publish."""

    @property
    def writes(self) -> bool:
        return self.verb in (Verb.CREATE, Verb.UPDATE, Verb.DELETE)


@dataclass
class Plan:
    steps: list[Step]

    @property
    def in_sync(self) -> bool:
        return all(step.verb == Verb.UNCHANGED for step in self.steps)

    @property
    def conflicts(self) -> list[Step]:
        return [step for step in self.steps if step.verb == Verb.CONFLICT]

    def count(self, verb: Verb) -> int:
        return sum(1 for step in self.steps if step.verb == verb)
