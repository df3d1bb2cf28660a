"""Events and their resources, by event type: older than a retention, or beyond the
newest N of each resource.

The policy names types by exact name or pattern (``prefect.worker.*``); the
types present in the database are read once (an index walk of
``ix_events__event__id``) and each is given to the first rule naming it.
Types no rule names are left to the server's own retention. A type's events go
by ``(event, occurred)`` (index ``ix_events__event_occurred``), oldest first.
With keep-last-N the resources of that type are walked in chunks along
``ix_events__event_resource_id_occurred`` and only events beyond each one's
newest N, before the preview's moment, go. An event's resources
(``event_resources``, no foreign key) go in the same transaction as the
event, found by ``ix_event_resources__event_id``; a kept event keeps all of
its resources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from flows.cleanup.policy import EventRule
from flows.cleanup.targets.batches import delete_by
from flows.cleanup.targets.target import Rows
from flows.database import Database

if TYPE_CHECKING:
    import sqlalchemy as sa
    from prefect.server.database import PrefectDBInterface

RESOURCES_PER_CHUNK = 200


@dataclass(frozen=True)
class TypeRetention:
    """One event type's fixed retention: what goes is older than ``cutoff`` and, with
    ``keep_last``, beyond each resource's newest N events before ``at``."""

    event: str
    cutoff: datetime
    at: datetime
    keep_last: int | None = None
    rule: str = ""


def event_retentions(
    rules: Sequence[EventRule], types: Sequence[str], at: datetime
) -> list[TypeRetention]:
    """Each type present, given to the first rule whose pattern names it."""
    found: list[TypeRetention] = []
    for event in sorted(types):
        for index, rule in enumerate(rules):
            if any(fnmatchcase(event, pattern) for pattern in rule.types):
                days = rule.retention_days
                found.append(
                    TypeRetention(
                        event=event,
                        cutoff=at - timedelta(days=days) if days is not None else at,
                        at=at,
                        keep_last=rule.keep_last,
                        rule=rule.name or f"event rule {index + 1}",
                    )
                )
                break
    return found


async def event_types(database: Database) -> list[str]:
    import sqlalchemy as sa

    db = database.db
    async with database.session() as session:
        return list((await session.execute(sa.select(db.Event.event).distinct())).scalars().all())


@dataclass
class Events:
    """Events of the named types that their retention lets go, with their resources."""

    retentions: tuple[TypeRetention, ...]
    key: str = "events"
    title: str = "events"
    tables: tuple[str, ...] = ("events",)
    _done: int = field(default=0, repr=False)
    _resource_cursor: str | None = field(default=None, repr=False)
    _pending: list[Any] = field(default_factory=list, repr=False)

    async def count(self, database: Database) -> Rows:
        import sqlalchemy as sa

        rows = Rows()
        async with database.session() as session:
            for retention in self.retentions:
                going = _going(database.db, retention)
                events = int(
                    await session.scalar(sa.select(sa.func.count()).select_from(going.subquery()))
                    or 0
                )
                rows["events"] += events
                if events:
                    rows["event_resources"] += int(
                        await session.scalar(
                            sa.select(sa.func.count()).where(
                                database.db.EventResource.event_id.in_(going)
                            )
                        )
                        or 0
                    )
        return +rows

    async def delete_batch(self, database: Database, size: int) -> Rows | None:
        while self._done < len(self.retentions):
            retention = self.retentions[self._done]
            ids = await self._next_ids(database, retention, size)
            if ids:
                return await _delete_events(database, retention, ids)
            self._done += 1
            self._resource_cursor = None
        return None

    async def _next_ids(self, database: Database, retention: TypeRetention, size: int) -> list[Any]:
        import sqlalchemy as sa

        db = database.db
        if retention.keep_last is None:
            async with database.session() as session:
                query = (
                    sa.select(db.Event.id)
                    .where(db.Event.event == retention.event, db.Event.occurred < retention.cutoff)
                    .order_by(db.Event.occurred, db.Event.id)
                    .limit(size)
                )
                return list((await session.execute(query)).scalars().all())
        while not self._pending:
            async with database.session() as session:
                resources = sa.select(db.Event.resource_id).where(db.Event.event == retention.event)
                if self._resource_cursor is not None:
                    resources = resources.where(db.Event.resource_id > self._resource_cursor)
                chunk = list(
                    (
                        await session.execute(
                            resources.distinct()
                            .order_by(db.Event.resource_id)
                            .limit(RESOURCES_PER_CHUNK)
                        )
                    )
                    .scalars()
                    .all()
                )
                if not chunk:
                    return []
                self._resource_cursor = chunk[-1]
                self._pending = list(
                    (await session.execute(_ranked(db, retention, chunk))).scalars().all()
                )
        ids, self._pending = self._pending[:size], self._pending[size:]
        return ids


def _going(db: PrefectDBInterface, retention: TypeRetention) -> sa.Select[Any]:
    import sqlalchemy as sa

    if retention.keep_last is None:
        return sa.select(db.Event.id).where(
            db.Event.event == retention.event, db.Event.occurred < retention.cutoff
        )
    return _ranked(db, retention, None)


def _ranked(
    db: PrefectDBInterface, retention: TypeRetention, resources: list[str] | None
) -> sa.Select[Any]:
    """Events of the type beyond each resource's newest ``keep_last`` (as of ``at``)
    that are older than the cutoff."""
    import sqlalchemy as sa

    conditions = [db.Event.event == retention.event, db.Event.occurred <= retention.at]
    if resources is not None:
        conditions.append(db.Event.resource_id.in_(resources))
    rank = (
        sa.func.row_number()
        .over(
            partition_by=db.Event.resource_id,
            order_by=(db.Event.occurred.desc(), db.Event.id.desc()),
        )
        .label("rank")
    )
    ranked = sa.select(db.Event.id, db.Event.occurred, rank).where(*conditions).subquery()
    return sa.select(ranked.c.id).where(
        ranked.c.rank > retention.keep_last, ranked.c.occurred < retention.cutoff
    )


async def _delete_events(database: Database, retention: TypeRetention, ids: list[Any]) -> Rows:
    """One transaction: the batch, checked again against its type and cutoff (and, with
    keep-last-N, ranked again among its resources' events), and its resources."""
    import sqlalchemy as sa

    db = database.db
    rows = Rows()
    query = sa.select(db.Event.id, db.Event.resource_id).where(
        db.Event.id.in_(ids),
        db.Event.event == retention.event,
        db.Event.occurred < retention.cutoff,
    )
    if database.dialect == "postgresql":
        query = query.with_for_update()
    async with database.transaction() as session:
        found = (await session.execute(query)).all()
        still = [row.id for row in found]
        if still and retention.keep_last is not None:
            # Newer events of a resource may have gone since (the server's own
            # retention): what is among the newest N now stays.
            resources = sorted({row.resource_id for row in found})
            ranked = set((await session.execute(_ranked(db, retention, resources))).scalars())
            still = [event_id for event_id in still if event_id in ranked]
        if not still:
            return rows
        rows["event_resources"] = await delete_by(session, db.EventResource.event_id, still)
        rows["events"] = await delete_by(session, db.Event.id, still)
    return +rows
