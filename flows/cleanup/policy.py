"""The retention policy: what each kind of row may be kept for, as people say it.

Flow runs follow an ordered list of rules; the first rule that matches a run
decides, and the cleanup's own fields (retention, states, scope) are the
default rule, so a config written before rules existed means what it meant.
Task runs made outside any flow run, events, and orphans (rows whose flow run
is gone) each have a policy of their own, off unless asked for. Whatever a
policy says, the safety rules of ``flows.cleanup.selection`` hold: terminal
runs only, protected tags win, cutoffs fixed when the preview is made.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TerminalState(StrEnum):
    """The only states a cleanup may delete: a run in one of them will not change again."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"


TERMINAL = [state.value for state in TerminalState]
NON_TERMINAL = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"]


def terminal_states(value: Any) -> Any:
    """State names normalised to Prefect's types; a non-terminal one is an error
    naming the choices."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return value
    normalised: list[Any] = []
    for item in items:
        name = item.strip().upper() if isinstance(item, str) else item
        if isinstance(name, str) and name not in TERMINAL:
            hint = (
                f"{name!r} is not a terminal state: a run in it may still change"
                if name in NON_TERMINAL or name == "LATE"
                else f"{name!r} is not a Prefect state type"
            )
            raise ValueError(f"{hint}; choose from {', '.join(TERMINAL)}")
        normalised.append(name)
    return normalised


def names(value: list[str]) -> list[str]:
    """Stripped, without blanks or repeats."""
    cleaned = [item.strip() for item in value]
    if any(not item for item in cleaned):
        raise ValueError("empty names are not allowed; remove the blank entry")
    return list(dict.fromkeys(cleaned))


def qualified(value: list[str]) -> list[str]:
    for name in value:
        if name.count("/") != 1 or name.startswith("/") or name.endswith("/"):
            raise ValueError(f"deployment {name!r} must be written 'flow-name/deployment-name'")
    return value


def patterns(value: list[str]) -> list[str]:
    for pattern in value:
        if "[" in pattern or "]" in pattern:
            raise ValueError(f"{pattern!r}: only * and ? are wildcards; remove [ ]")
    return value


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunMatch(_Part):
    """Which runs a rule is about; every field given must match, an empty one matches all."""

    states: list[TerminalState] = Field(
        default_factory=list, title="States", description="Terminal state types. Empty: all."
    )
    flows: list[str] = Field(default_factory=list, title="Flows", description="Flow names.")
    deployments: list[str] = Field(
        default_factory=list,
        title="Deployments",
        description="'flow-name/deployment-name'.",
    )
    tags: list[str] = Field(
        default_factory=list,
        title="Tags",
        description=(
            "Runs carrying any of these tags, exactly (as the default rule's tags; "
            "only protected tags are patterns)."
        ),
    )
    work_pools: list[str] = Field(
        default_factory=list, title="Work pools", description="Work pool names."
    )

    _states = field_validator("states", mode="before")(terminal_states)
    _names = field_validator("flows", "deployments", "tags", "work_pools")(names)
    _qualified = field_validator("deployments")(qualified)


class FlowRunRule(_Part):
    """One flow-run rule: the runs it matches, and how long they are kept.

    ``retention_days`` alone: runs that ended longer ago go. ``keep_last`` alone:
    all but the newest N of each deployment (each flow, for runs without one) go.
    Both: a run goes only when it is older than the retention and not among the
    newest N. Neither: the rule keeps what it matches.
    """

    name: str = Field(
        "",
        title="Name",
        description="Shown in the preview beside what the rule decided. Default: rule N.",
        max_length=80,
    )
    match: RunMatch = Field(default_factory=RunMatch, title="Matches")
    retention_days: float | None = Field(
        None, title="Retention (days)", description="Keep runs that ended less ago.", ge=0
    )
    keep_last: int | None = Field(
        None,
        title="Keep the last",
        description="Keep the newest N finished runs of each deployment (or flow).",
        ge=1,
        le=1_000_000,
    )

    @property
    def keeps_all(self) -> bool:
        return self.retention_days is None and self.keep_last is None


class TaskRunRetention(_Part):
    """Task runs made outside any flow run (tasks called directly, ``.delay()``, served
    background tasks): nothing else deletes them."""

    retention_days: float = Field(
        30, title="Retention (days)", description="Keep those that ended less ago.", ge=0
    )
    states: list[TerminalState] = Field(
        default_factory=lambda: list(TerminalState),
        title="States to clean",
        description="Only task runs in these terminal states go.",
        min_length=1,
    )

    _states = field_validator("states", mode="before")(terminal_states)


class EventRule(_Part):
    """Events of some types, and how long (or how many) to keep of them.

    A type this rule does not name follows the next rule, and one no rule names
    is left to the server's own event retention. ``keep_last`` keeps the newest
    N of each resource (the last 3 heartbeats of each flow run, say).
    """

    name: str = Field(
        "",
        title="Name",
        description="Shown in the preview beside what the rule decided. Default: event rule N.",
        max_length=80,
    )
    types: list[str] = Field(
        min_length=1,
        title="Event types",
        description="Exact names or patterns: prefect.flow-run.*, prefect.worker.*.",
    )
    retention_days: float | None = Field(
        None, title="Retention (days)", description="Keep events that occurred less ago.", ge=0
    )
    keep_last: int | None = Field(
        None,
        title="Keep the last, per resource",
        description="Keep the newest N events of each resource.",
        ge=1,
        le=1_000_000,
    )

    _names = field_validator("types")(names)
    _patterns = field_validator("types")(patterns)

    @model_validator(mode="after")
    def _says_something(self) -> EventRule:
        if self.retention_days is None and self.keep_last is None:
            raise ValueError(
                "an event rule needs retention_days or keep_last; to keep events of a "
                "type longer, raise the server's own retention "
                "(PREFECT_SERVER_EVENTS_RETENTION_PERIOD) instead"
            )
        return self


class OrphanRetention(_Part):
    """Rows whose flow run no longer exists: its logs, artifacts, task runs and run
    inputs, and artifact collections left pointing at deleted artifacts."""

    grace_hours: float = Field(
        1,
        title="Grace (hours)",
        description="Leave orphans younger than this: a run's logs can arrive before it.",
        ge=0,
        le=24 * 365,
    )
