"""Events and their resources, by event type: older than a retention, or beyond the
newest N of each resource.

The policy names types by exact name or pattern (``prefect.worker.*``); the
types present in the database are read once (an index walk of
``ix_events__event__id``) and each is given to the first rule naming it.
Types no rule names are left to the server's own retention.

Types that share a cutoff go together in one sweep, oldest first along
``ix_events__occurred_id`` with a keyset cursor, so consecutive batches touch
neighbouring pages of the table and of its time-ordered indexes. Going type by
type instead visits every page of the table once per type: on SQLite, where a
delete rewrites each page it touches, that costs about twice the time at 100k
events of 20 types (``scripts/bench_retention.py``).
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
from flows.cleanup.targets.batches import delete_by, delete_where
from flows.cleanup.targets.target import ROWS_SCALE, Rows
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


@dataclass(frozen=True)
class Sweep:
    """One pass: the ``types`` that share a cutoff (oldest first), or one type with
    keep-last-N (per resource)."""

    types: tuple[str, ...]
    cutoff: datetime
    at: datetime
    keep_last: int | None = None


def sweeps(retentions: Sequence[TypeRetention]) -> list[Sweep]:
    """Types with the same cutoff and no keep-last-N swept together; the others alone."""
    shared: dict[datetime, Sweep] = {}
    alone: list[Sweep] = []
    for retention in retentions:
        if retention.keep_last is not None:
            alone.append(
                Sweep((retention.event,), retention.cutoff, retention.at, retention.keep_last)
            )
            continue
        known = shared.get(retention.cutoff)
        types = (known.types if known else ()) + (retention.event,)
        shared[retention.cutoff] = Sweep(types, retention.cutoff, retention.at)
    return [*shared.values(), *alone]


@dataclass
class Events:
    """Events of the named types that their retention lets go, with their resources."""

    retentions: tuple[TypeRetention, ...]
    key: str = "events"
    title: str = "events"
    tables: tuple[str, ...] = ("events",)
    batch_scale: int = ROWS_SCALE
    _sweeps: list[Sweep] = field(default_factory=list, repr=False)
    _done: int = field(default=0, repr=False)
    _cursor: tuple[Any, Any] | None = field(default=None, repr=False)
    _swept: bool = field(default=False, repr=False)
    _resource_cursor: str | None = field(default=None, repr=False)
    _pending: list[Any] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._sweeps = sweeps(self.retentions)

    async def count(self, database: Database) -> Rows:
        import sqlalchemy as sa

        rows = Rows()
        async with database.session() as session:
            for sweep in self._sweeps:
                going = _going(database.db, sweep)
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
        while self._done < len(self._sweeps):
            sweep = self._sweeps[self._done]
            if sweep.keep_last is None:
                rows = await self._delete_oldest(database, sweep, size)
                if rows is not None:
                    return rows
            else:
                ids = await self._next_ranked(database, sweep, size)
                if ids:
                    return await _delete_ranked(database, sweep, ids)
            self._done += 1
            self._cursor = self._resource_cursor = None
            self._swept = False
        return None

    async def _delete_oldest(self, database: Database, sweep: Sweep, size: int) -> Rows | None:
        """The next ``size`` events of the sweep, oldest first, and their resources, in
        one transaction; None when the sweep has nothing left.

        The batch is a range of ``(occurred, id)`` found and deleted under the write
        lock, so what goes is selected at delete time by construction, and no id
        travels to Python and back (at 100k events that was a third of the time).
        """
        import sqlalchemy as sa

        if self._swept:
            return None
        db = database.db
        conditions = [_of_types(db, sweep.types), db.Event.occurred < sweep.cutoff]
        if self._cursor is not None:
            conditions.append(db.Event.occurred >= self._cursor[0])
            conditions.append(_key(db) > _bound(db, self._cursor))
        last = (
            sa.select(db.Event.occurred, db.Event.id)
            .where(*conditions)
            .order_by(db.Event.occurred, db.Event.id)
            .offset(size - 1)
            .limit(1)
        )
        rows = Rows()
        async with database.transaction() as session:
            upper = (await session.execute(last)).first()
            if upper is not None:
                # The plain ``occurred <=`` gives the planner the range's end; the
                # row value alone it does not use as one.
                conditions.append(db.Event.occurred <= upper.occurred)
                conditions.append(_key(db) <= _bound(db, (upper.occurred, upper.id)))
            batch = sa.select(db.Event.id).where(*conditions)
            rows["event_resources"] = await delete_where(
                session, db.EventResource, db.EventResource.event_id.in_(batch)
            )
            rows["events"] = await delete_where(session, db.Event, sa.and_(*conditions))
        if upper is None:  # the rest of the sweep went in this batch
            self._swept = True
            return +rows if rows["events"] else None
        self._cursor = (upper.occurred, upper.id)
        return +rows

    async def _next_ranked(self, database: Database, sweep: Sweep, size: int) -> list[Any]:
        import sqlalchemy as sa

        db = database.db
        while not self._pending:
            async with database.session() as session:
                resources = sa.select(db.Event.resource_id).where(db.Event.event == sweep.types[0])
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
                    (await session.execute(_ranked(db, sweep, chunk))).scalars().all()
                )
        ids, self._pending = self._pending[:size], self._pending[size:]
        return ids


def _key(db: PrefectDBInterface) -> Any:
    import sqlalchemy as sa

    return sa.tuple_(db.Event.occurred, db.Event.id)


def _bound(db: PrefectDBInterface, key: tuple[Any, Any]) -> Any:
    """A ``(occurred, id)`` bound with the columns' own types, so SQLite compares like
    with like."""
    import sqlalchemy as sa

    occurred, event_id = key
    return sa.tuple_(
        sa.bindparam(None, occurred, type_=db.Event.occurred.type),
        sa.bindparam(None, event_id, type_=db.Event.id.type),
    )


def _of_types(db: PrefectDBInterface, types: tuple[str, ...]) -> sa.ColumnElement[bool]:
    if len(types) == 1:
        return db.Event.event == types[0]  # ix_events__event_occurred_id is the way
    # Several types: ``event || ''`` keeps SQLite from walking the (event, occurred)
    # index once per type and sorting everything left for each batch; it then walks
    # ix_events__occurred_id in order, as the keyset cursor wants.
    return db.Event.event.concat("").in_(types)


def _going(db: PrefectDBInterface, sweep: Sweep) -> sa.Select[Any]:
    import sqlalchemy as sa

    if sweep.keep_last is None:
        return sa.select(db.Event.id).where(
            db.Event.event.in_(sweep.types), db.Event.occurred < sweep.cutoff
        )
    return _ranked(db, sweep, None)


def _ranked(db: PrefectDBInterface, sweep: Sweep, resources: list[str] | None) -> sa.Select[Any]:
    """Events of the type beyond each resource's newest ``keep_last`` (as of ``at``)
    that are older than the cutoff."""
    import sqlalchemy as sa

    conditions = [db.Event.event == sweep.types[0], db.Event.occurred <= sweep.at]
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
        ranked.c.rank > sweep.keep_last, ranked.c.occurred < sweep.cutoff
    )


async def _delete_ranked(database: Database, sweep: Sweep, ids: list[Any]) -> Rows:
    """One transaction: the batch, checked again against its type and cutoff, ranked
    again among its resources' events, and its resources."""
    import sqlalchemy as sa

    db = database.db
    rows = Rows()
    query = sa.select(db.Event.id, db.Event.resource_id).where(
        db.Event.id.in_(ids),
        db.Event.event.in_(sweep.types),
        db.Event.occurred < sweep.cutoff,
    )
    if database.dialect == "postgresql":
        query = query.with_for_update()
    async with database.transaction() as session:
        found = (await session.execute(query)).all()
        still = [row.id for row in found]
        if still:
            # Newer events of a resource may have gone since (the server's own
            # retention): what is among the newest N now stays.
            resources = sorted({row.resource_id for row in found})
            ranked = set((await session.execute(_ranked(db, sweep, resources))).scalars())
            still = [event_id for event_id in still if event_id in ranked]
        if not still:
            return rows
        rows["event_resources"] = await delete_by(session, db.EventResource.event_id, still)
        rows["events"] = await delete_by(session, db.Event.id, still)
    return +rows
