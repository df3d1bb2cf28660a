"""What a cleanup may do: the deployment's parameter form.

Field order, titles, descriptions and bounds are what the Prefect UI shows
when someone runs the deployment by hand, so they are written for that reader.
Whatever this config says, the safety invariants in ``flows.cleanup.selection`` hold.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TerminalState(StrEnum):
    """The only states a cleanup may delete: a run in one of them will not change again."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"


TERMINAL = [state.value for state in TerminalState]
NON_TERMINAL = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"]

Approval = Literal["human", "ai", "none"]
Deletion = Literal["auto", "api"]


class AISettings(BaseModel):
    """How the AI reviewer decides; used only when approval is ``ai``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "anthropic:claude-sonnet-4-5",
        title="Model",
        description=(
            "pydantic-ai model name, 'provider:model'. The provider's API key is read "
            "from the worker's environment (for example ANTHROPIC_API_KEY)."
        ),
        min_length=3,
    )
    min_confidence: float = Field(
        0.8,
        title="Minimum confidence",
        description="Approve only when the agent approves with at least this confidence (0-1).",
        ge=0,
        le=1,
    )
    on_low_confidence: Literal["reject", "human"] = Field(
        "reject",
        title="On low confidence or failure",
        description=(
            "When the agent answers below the minimum confidence, or fails: reject the "
            "cleanup, or ask a person (Prefect UI form or Slack). A confident "
            "rejection is always a rejection."
        ),
    )
    timeout_seconds: int = Field(
        300,
        title="Agent timeout (seconds)",
        description="The whole review must finish within this; a timeout counts as a failure.",
        ge=10,
        le=3600,
    )


class RetentionConfig(BaseModel):
    """Which flow runs a cleanup may delete, and who must say yes first."""

    model_config = ConfigDict(extra="forbid", title="Database cleanup")

    retention_days: float = Field(
        30,
        title="Retention (days)",
        description="Keep runs that ended less than this many days ago. 0 keeps nothing.",
        ge=0,
        le=36500,
    )
    states: list[TerminalState] = Field(
        default_factory=lambda: list(TerminalState),
        title="States to clean",
        description=(
            "Only runs in these terminal states are deleted. Scheduled, Pending, Running, "
            "Paused, Late and Cancelling runs are never deleted."
        ),
        min_length=1,
    )
    flows: list[str] = Field(
        default_factory=list,
        title="Only these flows",
        description="Flow names. Empty: every flow.",
    )
    deployments: list[str] = Field(
        default_factory=list,
        title="Only these deployments",
        description="'flow-name/deployment-name'. Empty: runs of any deployment, or none.",
    )
    tags: list[str] = Field(
        default_factory=list,
        title="Only runs with any of these tags",
        description="Empty: runs with any tags, or none.",
    )
    work_pools: list[str] = Field(
        default_factory=list,
        title="Only these work pools",
        description="Work pool names. Empty: every work pool, or none.",
    )
    protected_tags: list[str] = Field(
        default_factory=lambda: ["keep"],
        title="Protected tags",
        description=(
            "A run carrying a tag that matches any of these is never deleted. Matching "
            "ignores case (keep protects Keep and KEEP); * and ? are wildcards (keep* "
            "protects keep-forever). The deployment's own protected tags always apply too."
        ),
    )
    max_runs: int = Field(
        10_000,
        title="Maximum runs per cleanup",
        description="The oldest runs go first; the rest wait for the next cleanup.",
        ge=1,
        le=10_000_000,
    )
    batch_size: int = Field(
        500,
        title="Batch size",
        description=(
            "Runs deleted per transaction (through the API the server caps this at 50). "
            "Smaller batches hold database locks for less time."
        ),
        ge=1,
        le=2000,
    )
    dry_run: bool = Field(
        False,
        title="Dry run",
        description="Preview and report only; nothing is deleted and no approval is asked.",
    )
    approval: Approval = Field(
        "human",
        title="Approval",
        description=(
            "'human': pause for a person (Prefect UI form or Slack button). "
            "'ai': an AI reviewer with read-only Prefect tools. "
            "'none': delete without asking; for non-production servers only."
        ),
    )
    approval_timeout_seconds: int = Field(
        3600,
        title="Approval timeout (seconds)",
        description="No answer within this counts as a rejection.",
        ge=5,
        le=7 * 24 * 3600,
    )
    ai: AISettings = Field(
        default_factory=AISettings,
        title="AI reviewer",
        description="Used only when approval is 'ai'.",
    )
    deletion: Deletion = Field(
        "auto",
        title="Deletion path",
        description=(
            "'auto': delete in-process through Prefect's own server models when this "
            "worker can reach the server's database (PREFECT_SERVER_DATABASE_CONNECTION_URL), "
            "else through the API. 'api': always through the API."
        ),
    )
    reclaim_disk: bool = Field(
        False,
        title="Reclaim disk afterwards",
        description=(
            "Run VACUUM (SQLite) or VACUUM ANALYZE (PostgreSQL) after deleting, where the "
            "database is reachable. SQLite's VACUUM locks the database while it runs."
        ),
    )

    @field_validator("states", mode="before")
    @classmethod
    def _only_terminal(cls, value: Any) -> Any:
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

    @field_validator("flows", "deployments", "tags", "work_pools", "protected_tags")
    @classmethod
    def _no_blanks(cls, value: list[str]) -> list[str]:
        cleaned = [item.strip() for item in value]
        if any(not item for item in cleaned):
            raise ValueError("empty names are not allowed; remove the blank entry")
        return list(dict.fromkeys(cleaned))

    @field_validator("protected_tags")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if "[" in pattern or "]" in pattern:
                raise ValueError(
                    f"protected tag {pattern!r}: only * and ? are wildcards; remove [ ]"
                )
        return value

    @field_validator("deployments")
    @classmethod
    def _qualified(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.count("/") != 1 or name.startswith("/") or name.endswith("/"):
                raise ValueError(f"deployment {name!r} must be written 'flow-name/deployment-name'")
        return value

    @model_validator(mode="after")
    def _states_unique(self) -> RetentionConfig:
        self.states = list(dict.fromkeys(self.states))
        return self
