"""Archives past their age: found for the preview, removed once approved.

An archive's age is its index's ``made_at``. An archive without a readable
index (a cleanup that could not even open it) is left alone: nothing says
what it is, so nothing removes it silently.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from flows.archive.index import INDEX, ArchiveIndex
from flows.archive.store import Store


class Expired(BaseModel):
    """One archive older than the configured age."""

    name: str = Field(description="The archive's folder name.")
    made_at: datetime = Field(description="When it was written.")
    rows: int = Field(description="Rows it holds.")


async def indexes(store: Store) -> list[ArchiveIndex]:
    """Every readable archive index in ``store``, oldest first."""
    found: list[ArchiveIndex] = []
    for path in await store.files():
        if path.count("/") != 1 or not path.endswith(f"/{INDEX}"):
            continue
        try:
            found.append(ArchiveIndex.model_validate_json(await store.read(path)))
        except Exception:  # not ours, or half-written: never pruned blindly
            continue
    return sorted(found, key=lambda index: index.made_at)


async def expired(store: Store, before: datetime) -> list[Expired]:
    """The archives made before ``before``."""
    return [
        Expired(name=index.name, made_at=index.made_at, rows=index.rows)
        for index in await indexes(store)
        if index.made_at < before
    ]


async def prune(store: Store, archives: list[Expired]) -> int:
    """Remove the approved expired archives; how many went."""
    for archive in archives:
        await store.remove(archive.name)
    return len(archives)
