"""The manifest: exactly which flow runs a cleanup will delete, fixed when it previews.

An approval is given for a set of runs, not for a query. Between the preview
and the deletion the world moves: a person deliberates for an hour, runs
cross the cutoff, and deleting a parent frees its subflow runs to become
top-level. Run again at delete time, the query would take runs nobody was
shown. So the preview records the ids of the runs it would delete, in the
order the deletion takes them (oldest end first), with a short hash that the
approval messages show; the deletion deletes only members of the manifest,
and of those only the ones that still qualify then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.sorting import FlowRunSort

from flows.cleanup.selection import Selection
from flows.database import Database

PAGE = 200


@dataclass(frozen=True)
class Manifest:
    """The flow runs approved for deletion, in deletion order."""

    flow_run_ids: tuple[UUID, ...]
    made_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __len__(self) -> int:
        return len(self.flow_run_ids)

    @property
    def hash(self) -> str:
        """12 hex digits of SHA-256 over the ids in order: what the approver saw."""
        digest = hashlib.sha256("\n".join(map(str, self.flow_run_ids)).encode())
        return digest.hexdigest()[:12]

    def batches(self, size: int) -> Iterator[list[UUID]]:
        for start in range(0, len(self.flow_run_ids), size):
            yield list(self.flow_run_ids[start : start + size])


async def make_manifest(
    selection: Selection, client: PrefectClient, database: Database | None
) -> Manifest:
    """At most ``selection.limit`` runs that qualify now, oldest first."""
    if selection.empty_scope:
        return Manifest(())
    if database is not None:
        return Manifest(tuple(await _from_database(selection, database)))
    return Manifest(tuple(await _from_api(selection, client)))


async def _from_database(selection: Selection, database: Database) -> list[UUID]:
    import sqlalchemy as sa

    db = database.db
    query = (
        sa.select(db.FlowRun.id)
        .where(selection.sql_condition(db))
        .order_by(db.FlowRun.end_time, db.FlowRun.id)
        .limit(selection.limit)
    )
    async with database.session() as session:
        return list((await session.execute(query)).scalars().all())


async def _from_api(selection: Selection, client: PrefectClient) -> list[UUID]:
    """Paged through the API; protected runs are read and left out here, since a
    Prefect filter cannot say "without these tags"."""
    found: list[UUID] = []
    offset = 0
    while len(found) < selection.limit:
        page = await client.read_flow_runs(
            **selection.read_filters(),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=PAGE,
            offset=offset,
        )
        found.extend(run.id for run in page if selection.is_deletable(run))
        if len(page) < PAGE:
            break
        offset += PAGE
    return found[: selection.limit]
