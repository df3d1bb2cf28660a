"""The cleanup's side of the archive: where it goes, what the approval is told, pruning.

The config names a folder or a block (``ArchiveSettings``); this module
turns that into a store, into the ``ArchivePlan`` the preview and every
approval request show (where the rows will be kept, or that the user opted
out, and which old archives the same approval prunes), and opens the writer
once the deletion is approved. Archiving needs the database: through the API
a cleanup cannot read every column of what it deletes, so with the archive
on, a cleanup that can only reach the API stops before asking anyone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

from pydantic import BaseModel, Field

from flows.archive import ArchiveWriter, Store, open_store
from flows.archive.prune import Expired, expired
from flows.cleanup.config import ArchiveSettings
from flows.database import Database
from flows.errors import CleanupError


class ArchivePlan(BaseModel):
    """What the approval is told about the archive."""

    enabled: bool = Field(description="Whether deleted rows are archived first.")
    where: str = Field("", description="The folder or block the archive goes to.")
    prune: list[Expired] = Field(
        default_factory=list, description="Archives past their age this cleanup removes."
    )
    keep_days: float | None = Field(None, description="How long archives are kept.")

    @property
    def line(self) -> str:
        """One sentence for the preview and the approval messages."""
        if not self.enabled:
            return "Archive: none (opted out): deleted rows cannot be restored."
        pruned = (
            f"; prunes {len(self.prune)} archives older than {self.keep_days:g} days"
            if self.prune and self.keep_days
            else ""
        )
        return f"Archive: every deleted row goes first to {self.where}{pruned}."


def default_folder() -> Path:
    """``janitor/archive`` under the worker's PREFECT_HOME."""
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home) / "janitor" / "archive"


async def archive_store(settings: ArchiveSettings) -> Store | None:
    """The store the config names; ``None`` when the archive is off."""
    if not settings.enabled:
        return None
    return await open_store(settings.folder or str(default_folder()), settings.block or None)


async def plan_archive(settings: ArchiveSettings, store: Store | None, at: datetime) -> ArchivePlan:
    if store is None:
        return ArchivePlan(enabled=False)
    prune: list[Expired] = []
    if settings.keep_days is not None:
        prune = await expired(store, at - timedelta(days=settings.keep_days))
    return ArchivePlan(enabled=True, where=store.where, prune=prune, keep_days=settings.keep_days)


def require_database(plan: ArchivePlan, deleter: Database | None) -> None:
    """Archiving reads rows in the deleting transaction: without the database, stop."""
    if plan.enabled and deleter is None:
        raise CleanupError(
            "the archive is on, and this cleanup can reach only the API, which cannot "
            "read every column of what it would delete; nothing was deleted",
            "run the cleanup where PREFECT_SERVER_DATABASE_CONNECTION_URL reaches the "
            "server's database (and deletion: auto), or set archive: none to delete "
            "without an archive",
        )


async def open_writer(
    store: Store | None, database: Database | None, manifest_hash: str, run_id: UUID
) -> ArchiveWriter | None:
    if store is None or database is None:
        return None
    return await ArchiveWriter.open(
        store, database, manifest_hash=manifest_hash, cleanup_flow_run_id=run_id
    )
