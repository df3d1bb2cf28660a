"""The index of one archive: what it holds, from which cleanup, for which schema.

An archive is a folder (or a prefix of a block's filesystem) per cleanup:
``index.json`` and, per target, one gzip-compressed JSON-lines file per
batch (``flow_runs/000001.jsonl.gz``). The index is written when the archive
opens and again when it closes, with the rows per table; a cleanup stopped
part-way leaves ``complete: false`` and every batch it did delete, since each
batch's file is written before its delete commits. A restore reads the
batch files it finds, not the counts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

FORMAT = 1
INDEX = "index.json"
PART_SUFFIX = ".jsonl.gz"


class TargetEntry(BaseModel):
    """What one target of the cleanup archived."""

    parts: int = Field(0, description="Batch files written.")
    rows: dict[str, int] = Field(default_factory=dict, description="Rows archived per table.")


class ArchiveIndex(BaseModel):
    """The ``index.json`` of an archive."""

    format: int = Field(FORMAT, description="The archive format's version.")
    name: str = Field(description="The archive's folder name: when, and which cleanup.")
    cleanup_flow_run_id: UUID | None = Field(None, description="The cleanup that wrote it.")
    made_at: datetime = Field(
        default_factory=lambda: datetime.now(UTC), description="When the archive was opened."
    )
    manifest_hash: str = Field("", description="The hash of the manifest that was approved.")
    prefect_version: str = Field(description="Prefect's version on the cleanup's side.")
    schema_revision: str | None = Field(
        None, description="The database's Alembic revision (``alembic_version``)."
    )
    dialect: str = Field(description="sqlite or postgresql.")
    tables: dict[str, list[str]] = Field(
        default_factory=dict, description="The columns archived, per table."
    )
    targets: dict[str, TargetEntry] = Field(
        default_factory=dict, description="Per target key (flow_runs, events, ...)."
    )
    complete: bool = Field(False, description="Whether the cleanup closed the archive.")

    @property
    def rows(self) -> int:
        return sum(sum(entry.rows.values()) for entry in self.targets.values())


async def schema_revision(database: Any) -> str | None:
    """The database's Alembic revision; ``None`` for one made without Alembic (a
    restore then compares columns only)."""
    try:
        found = await database.scalar("SELECT version_num FROM alembic_version")
    except Exception:
        return None
    return str(found) if found else None


def archive_name(made_at: datetime, cleanup_flow_run_id: UUID | None) -> str:
    """``20261205T013000Z-1a2b3c4d``: sorts by time, unique per cleanup."""
    stamp = made_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{str(cleanup_flow_run_id)[:8] if cleanup_flow_run_id else 'manual'}"
