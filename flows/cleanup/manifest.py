"""The manifest: exactly which flow runs a cleanup will delete, fixed when it previews.

An approval is given for a set of runs, not for a query. Between the preview
and the deletion the world moves: a person deliberates for an hour, runs
cross the cutoff, and deleting a parent frees its subflow runs to become
top-level. Run again at delete time, the query would take runs nobody was
shown. So the preview records the ids of the runs it would delete, in the
order the deletion takes them (oldest end first), each with the rule that let
it go, and a short hash that the approval messages show; the deletion
deletes only members of the manifest, and of those only the ones that still
qualify then under that same rule. The other targets (events by the million)
are bound by their exact conditions, cutoffs fixed, and the rows approved:
their deletion stops at that count.

The runs are read once, newest first, from the database (streamed) or page
by page from the API, and ``flows.cleanup.rules.sort_out`` decides.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterEndTime,
    FlowRunFilterParentTaskRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort

from flows.cleanup.rules import Policy, Ruling, RunFacts, Sorting, sort_out
from flows.database import Database

PAGE = 200
STREAM_ROWS = 2000
HASH_SLICE = 10_000


@dataclass(frozen=True)
class Manifest:
    """The flow runs approved for deletion, in deletion order, each with its rule.

    Kept packed, 16 bytes an id and 2 a rule, not as Python objects of about 110
    bytes: the manifest lives from the preview to the end of the deletion, and a
    cleanup's memory should not grow with the runs it deletes. ``ids`` and
    ``batch`` make the ``UUID`` objects of a slice when it is needed.
    """

    packed_ids: bytes = b""
    """The ids in deletion order, 16 bytes each."""
    made_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    packed_rules: bytes = b""
    """The index of the rule that let each run go (unsigned 16-bit each); empty means
    the last (default) rule for every run."""
    bound: tuple[str, ...] = ()
    """The other targets, each as its exact conditions and the rows approved
    (``bind``): too many to list by id, bound by what selects them and how many."""

    @classmethod
    def of(cls, ids: Iterable[UUID], rules: Iterable[int] = ()) -> Manifest:
        return cls(
            packed_ids=b"".join(run_id.bytes for run_id in ids),
            packed_rules=array("H", rules).tobytes(),
        )

    def __len__(self) -> int:
        return len(self.packed_ids) // 16

    def ids(self, start: int, size: int) -> list[UUID]:
        """The ``size`` ids from position ``start``."""
        return [
            UUID(bytes=self.packed_ids[16 * i : 16 * i + 16])
            for i in range(start, min(start + size, len(self)))
        ]

    def bind(self, targets: Iterable[str]) -> Manifest:
        """This manifest with the other targets' conditions and approved rows in it."""
        return replace(self, bound=tuple(targets))

    @property
    def hash(self) -> str:
        """12 hex digits of SHA-256 over the ids in order, then the bound targets: what
        the approver saw."""
        # Fed id by id (the same digest as over the ids joined by newlines): no string
        # of every id is ever built, so a manifest of 100k runs costs no extra memory.
        digest = hashlib.sha256()
        for start in range(0, len(self), HASH_SLICE):
            for offset, run_id in enumerate(self.ids(start, HASH_SLICE)):
                text = str(run_id).encode()
                digest.update(b"\n" + text if start + offset else text)
        for target in self.bound:
            digest.update(b"\n" + target.encode())
        return digest.hexdigest()[:12]

    def batch(self, start: int, size: int) -> list[tuple[UUID, int | None]]:
        """The ``size`` runs from position ``start``, each with its rule (``None``: the
        default)."""
        rules = array("H", self.packed_rules[2 * start : 2 * (start + size)])
        return [
            (run_id, rules[offset] if rules else None)
            for offset, run_id in enumerate(self.ids(start, size))
        ]


async def make_manifest(
    policy: Policy, client: PrefectClient, database: Database | None
) -> tuple[Manifest, Ruling]:
    """At most ``policy.limit`` runs that the rules let go now, oldest first, and the
    decision over every run seen (for the preview)."""
    if all(rule.keeps_all or rule.selection.empty_scope for rule in policy.rules):
        return Manifest(), sort_out(policy.rules, [])
    if database is not None:
        sorting = Sorting(policy.rules)
        async for run in _from_database(policy, database):
            sorting.see(run)
    else:
        # Through the API every page is a request: with no rule ranking by count,
        # read oldest first and stop once the cap is reached.
        oldest_first = _since(policy) is not None
        sorting = Sorting(policy.rules, oldest_first=oldest_first)
        async for run in _from_api(policy, client, oldest_first=oldest_first):
            sorting.see(run)
            if oldest_first and sorting.ruling.eligible >= policy.limit:
                sorting.ruling.complete = False
                break
    ruling = sorting.done()
    ids, rules = ruling.packed(policy.limit)
    manifest = Manifest(packed_ids=ids, packed_rules=rules)
    return manifest, ruling


def _deleting(policy: Policy) -> list[Any]:
    return [rule for rule in policy.rules if not rule.keeps_all and not rule.selection.empty_scope]


def _since(policy: Policy) -> datetime | None:
    """No rule ranks by count: runs ended after the latest cutoff cannot go, skip them."""
    deleting = _deleting(policy)
    if any(rule.ranks for rule in deleting):
        return None
    return max(rule.selection.cutoff for rule in deleting)


async def _from_database(policy: Policy, database: Database) -> AsyncIterator[RunFacts]:
    import sqlalchemy as sa

    db = database.db
    conditions: list[Any] = [sa.or_(*(rule.selection.match_sql(db) for rule in _deleting(policy)))]
    conditions.append(db.FlowRun.end_time.is_not(None))
    if (before := _since(policy)) is not None:
        conditions.append(db.FlowRun.end_time < before)
    query = (
        sa.select(
            db.FlowRun.id,
            db.FlowRun.flow_id,
            db.FlowRun.deployment_id,
            db.FlowRun.work_queue_id,
            db.FlowRun.state_type,
            db.FlowRun.tags,
            db.FlowRun.end_time,
        )
        .where(*conditions)
        .order_by(db.FlowRun.end_time.desc(), db.FlowRun.id.desc())
        .execution_options(yield_per=STREAM_ROWS)
    )
    async with database.session() as session:
        result = await session.stream(query)
        async for row in result:
            state = row.state_type.value if hasattr(row.state_type, "value") else row.state_type
            yield RunFacts(
                id=row.id,
                flow_id=row.flow_id,
                deployment_id=row.deployment_id,
                work_queue_id=row.work_queue_id,
                state_type=state,
                tags=tuple(row.tags or ()),
                end_time=row.end_time,
            )


async def _from_api(
    policy: Policy, client: PrefectClient, *, oldest_first: bool = False
) -> AsyncIterator[RunFacts]:
    """Paged through the API, newest first (or oldest); a run seen twice (the pages
    moved under the read) is given once."""
    deleting = _deleting(policy)
    if len(deleting) == 1:
        filters = deleting[0].selection.read_filters()
        run_filter: FlowRunFilter = filters["flow_run_filter"]
    else:
        filters = {}
        run_filter = FlowRunFilter(
            parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True),
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(
                    any_=sorted(
                        {StateType(s) for rule in deleting for s in rule.selection.states},
                        key=str,
                    )
                )
            ),
        )
        filters["flow_run_filter"] = run_filter
    run_filter.end_time = FlowRunFilterEndTime(before_=_since(policy), is_null_=False)
    seen: set[UUID] = set()
    offset = 0
    while True:
        page = await client.read_flow_runs(
            **filters,
            # Prefect sorts by end time newest first only; the expected start is the
            # closest oldest-first order it offers (the going runs are sorted after).
            sort=FlowRunSort.EXPECTED_START_TIME_ASC if oldest_first else FlowRunSort.END_TIME_DESC,
            limit=PAGE,
            offset=offset,
        )
        for run in page:
            if run.id in seen:
                continue
            seen.add(run.id)
            yield RunFacts(
                id=run.id,
                flow_id=run.flow_id,
                deployment_id=run.deployment_id,
                work_queue_id=run.work_queue_id,
                state_type=run.state_type.value if run.state_type else None,
                tags=tuple(run.tags),
                end_time=run.end_time,
                parent_task_run_id=run.parent_task_run_id,
            )
        if len(page) < PAGE:
            return
        offset += PAGE
