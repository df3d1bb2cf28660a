"""What a cleanup may do: the deployment's parameter form.

Field order, titles, descriptions and bounds are what the Prefect UI shows
when someone runs the deployment by hand, so they are written for that reader.
The first fields are the default flow-run rule (what a config meant before
rules existed); ``rules``, ``task_runs``, ``events`` and ``orphans`` are the
retention policy's other parts (``flows.cleanup.policy``). Whatever this
config says, the safety invariants in ``flows.cleanup.selection`` hold.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.cleanup.policy import (
    EventRule,
    FlowRunRule,
    OrphanRetention,
    TaskRunRetention,
    TerminalState,
    names,
    patterns,
    qualified,
    terminal_states,
)

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


class ArchiveSettings(BaseModel):
    """Where a cleanup archives what it deletes, and for how long."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        title="Archive before deleting",
        description=(
            "Write every row to the archive before its delete commits, so "
            "scripts/restore.py can put it back. Off only by choice (archive: none); "
            "every approval request says so."
        ),
    )
    folder: str = Field(
        "",
        title="Folder",
        description=("A local folder on the worker. Empty: janitor/archive under PREFECT_HOME."),
    )
    block: str = Field(
        "",
        title="Filesystem block",
        description=(
            "A Prefect filesystem block as block-type/name, for example "
            "remote-file-system/cleanup-archive (S3, GCS, Azure through fsspec) or "
            "local-file-system/cleanup-archive. Wins over the folder."
        ),
    )
    keep_days: float | None = Field(
        90,
        title="Keep archives (days)",
        description=(
            "Archives older than this are pruned by the next cleanup, shown in its "
            "preview and approved with it. Empty: kept for good."
        ),
        gt=0,
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        """``archive: none`` opts out; ``archive: /some/folder`` names the folder."""
        if isinstance(value, str):
            if value.strip().lower() in ("none", "off", "false"):
                return {"enabled": False}
            return {"folder": value}
        if value is None or value is False:
            return {"enabled": False}
        return value

    @field_validator("block")
    @classmethod
    def _block_slug(cls, value: str) -> str:
        if value and value.count("/") != 1:
            raise ValueError(
                f"archive block {value!r} must be written block-type/name, for example "
                "remote-file-system/cleanup-archive"
            )
        return value


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
    rules: list[FlowRunRule] = Field(
        default_factory=list,
        title="Flow-run rules",
        description=(
            "Checked in order before the fields above; the first rule that matches a run "
            "(by state, flow, deployment, tag, work pool) decides how long it is kept. "
            "Runs no rule matches follow the fields above. Protected tags win over every rule."
        ),
    )
    task_runs: TaskRunRetention | None = Field(
        None,
        title="Task runs without a flow run",
        description="Delete finished task runs made outside any flow run. Empty: leave them.",
    )
    events: list[EventRule] = Field(
        default_factory=list,
        title="Event rules",
        description=(
            "Per event type (exact or a pattern such as prefect.worker.*), the first rule "
            "naming a type decides. Types no rule names follow the server's own retention."
        ),
    )
    orphans: OrphanRetention | None = Field(
        None,
        title="Orphans",
        description=(
            "Delete logs, artifacts, task runs and run inputs whose flow run is gone. "
            "Empty: leave them."
        ),
    )
    max_rows: int = Field(
        1_000_000,
        title="Maximum rows per target",
        description=(
            "Task runs, events or orphan rows one cleanup deletes at most, per target; "
            "the rest wait for the next cleanup."
        ),
        ge=1,
        le=1_000_000_000,
    )
    batch_size: int = Field(
        500,
        title="Batch size",
        description=(
            "Runs deleted in the first transaction; later ones are sized by "
            "'Seconds per batch'. Through the API every batch is this size, at most 50 "
            "(the server's cap)."
        ),
        ge=1,
        le=2000,
    )
    batch_seconds: float = Field(
        1.0,
        title="Seconds per batch",
        description=(
            "In-process, each transaction is sized to hold the database for about this "
            "long: batches grow (up to 20 times 'Batch size') while they are faster and "
            "shrink when slower. Longer deletes faster; shorter lets the server's own "
            "writes in sooner: on SQLite (one writer at a time) a write waits up to "
            "about this long while a cleanup runs. 0: every batch is 'Batch size'."
        ),
        ge=0,
        le=60,
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
    manifest_max_age_seconds: int | None = Field(
        None,
        title="Manifest lifetime (seconds)",
        description=(
            "An approved manifest older than this when the deletion starts is refused "
            "and a fresh preview asked for. Empty: the approval timeout, plus a minute."
        ),
        ge=1,
    )
    archive: ArchiveSettings = Field(
        default_factory=ArchiveSettings,
        title="Archive",
        description="Every deleted row archived first, for scripts/restore.py; 'none' opts out.",
    )
    deletion: Deletion = Field(
        "auto",
        title="Deletion path",
        description=(
            "'auto': delete in-process on Prefect's own database tables when this "
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

    _states = field_validator("states", mode="before")(terminal_states)
    _names = field_validator("flows", "deployments", "tags", "work_pools", "protected_tags")(names)
    _qualified = field_validator("deployments")(qualified)

    @field_validator("protected_tags")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        try:
            return patterns(value)
        except ValueError as exc:
            raise ValueError(f"protected tag {exc}") from None

    @model_validator(mode="after")
    def _states_unique(self) -> RetentionConfig:
        self.states = list(dict.fromkeys(self.states))
        return self

    @property
    def manifest_lifetime_seconds(self) -> int:
        """How old an approved manifest may be when its deletion starts."""
        if self.manifest_max_age_seconds is not None:
            return self.manifest_max_age_seconds
        return self.approval_timeout_seconds + 60

    @property
    def other_targets(self) -> list[str]:
        """The targets besides flow runs that this config asks for."""
        asked = {"task_runs": self.task_runs, "events": self.events, "orphans": self.orphans}
        return [key for key, value in asked.items() if value]
