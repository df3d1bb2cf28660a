"""Which flow runs each retention rule lets go: one pure decision over the runs.

A policy is an ordered list of rules, each a ``Selection`` (its scope, states
and cutoff, the protected tags shared) with an optional keep-last-N. The first
rule that *matches* a run (scope and state, whatever its age) decides for it,
so "keep failures 90 days" above "keep everything 7 days" keeps a failure of
last month. Keep-last-N ranks a rule's runs per deployment (per flow for runs
without one) by end time, newest first; protected runs take their place in
that ranking, and are kept whatever it says.

``sort_out`` sees the runs newest first, once, and keeps only what it will
report and the runs that may go: the same answer whether the runs came from
the database or from the API, and memory that grows with what goes, not with
the history kept.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.types._datetime import now

from flows.cleanup.config import RetentionConfig
from flows.cleanup.policy import TERMINAL
from flows.cleanup.selection import Selection, resolve, resolve_scope

if TYPE_CHECKING:
    import sqlalchemy as sa
    from prefect.server.database import PrefectDBInterface


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What a rule looks at in a run: read from the database or from the API alike."""

    id: UUID
    flow_id: UUID
    deployment_id: UUID | None
    work_queue_id: UUID | None
    state_type: str | None
    tags: tuple[str, ...]
    end_time: datetime | None
    parent_task_run_id: UUID | None = None

    @property
    def group(self) -> UUID:
        """Keep-last-N counts per deployment, or per flow for runs without one."""
        return self.deployment_id or self.flow_id


@dataclass(frozen=True)
class Rule:
    """One resolved rule: the runs it decides for, and how many of the newest it keeps."""

    name: str
    selection: Selection
    keep_last: int | None = None
    keeps_all: bool = False
    """A rule with neither a retention nor a keep-last: what it matches stays."""

    @property
    def ranks(self) -> bool:
        """Whether it keeps the newest N: a decision that needs the runs newest first."""
        return self.keep_last is not None and not self.keeps_all and not self.selection.empty_scope


@dataclass
class Tally:
    """What one rule decided."""

    name: str
    matched: int = 0
    going: int = 0
    protected: int = 0
    kept_by_count: int = 0


@dataclass
class Ruling:
    """The decision over every run seen: which may go (oldest first), and the tallies.

    The runs that may go are kept column-wise, 26 bytes each (the id's 16 bytes,
    the end time as a float, the rule's index), not as Python objects of about
    250 bytes: a ruling over a million runs is 26 MB, not 250. What the preview
    reports of them (per state, flow and deployment) is counted as they come.
    """

    tallies: list[Tally] = field(default_factory=list)
    newest_end: datetime | None = None
    complete: bool = True
    """False when reading stopped once enough runs were found (more may qualify)."""
    _states: Counter[str] = field(default_factory=Counter)
    _flows: Counter[UUID] = field(default_factory=Counter)
    _deployments: Counter[UUID] = field(default_factory=Counter)
    _ids: bytearray = field(default_factory=bytearray)
    _ends: array[float] = field(default_factory=lambda: array("d"))
    _rules: array[int] = field(default_factory=lambda: array("H"))

    def add(self, run: RunFacts, rule: int) -> None:
        """One more run that may go (``run.end_time`` is set)."""
        assert run.end_time is not None
        self._ids += run.id.bytes
        self._ends.append(run.end_time.timestamp())
        self._rules.append(rule)
        self._states[run.state_type or ""] += 1
        self._flows[run.flow_id] += 1
        if run.deployment_id:
            self._deployments[run.deployment_id] += 1

    @property
    def eligible(self) -> int:
        """How many runs may go."""
        return len(self._rules)

    def end(self, position: int) -> datetime:
        """The end time of the run at ``position``."""
        return datetime.fromtimestamp(self._ends[position], UTC)

    @property
    def oldest_end(self) -> datetime | None:
        return self.end(0) if self._ends else None

    def packed(self, limit: int) -> tuple[bytes, bytes]:
        """The first ``limit`` runs in order, as the manifest keeps them: their ids (16
        bytes each) and their rules (unsigned 16-bit each)."""
        count = min(limit, self.eligible)
        return bytes(self._ids[: 16 * count]), self._rules[:count].tobytes()

    def reorder(self, order: Iterable[int]) -> None:
        """Put the runs in ``order`` (positions of the present order)."""
        ids, ends, rules = bytearray(), array("d"), array("H")
        for i in order:
            ids += self._ids[16 * i : 16 * i + 16]
            ends.append(self._ends[i])
            rules.append(self._rules[i])
        self._ids, self._ends, self._rules = ids, ends, rules

    def oldest_first_order(self) -> list[int]:
        """Positions sorted by end time, then id (as ``str(id)`` sorts)."""
        return sorted(
            range(self.eligible),
            key=lambda i: (self._ends[i], self._ids[16 * i : 16 * i + 16].hex()),
        )

    @property
    def protected(self) -> int:
        return sum(tally.protected for tally in self.tallies)

    @property
    def matching(self) -> int:
        """Runs a rule would let go were it not for a protected tag."""
        return self.eligible + self.protected

    def by_state(self) -> dict[str, int]:
        return dict(self._states.most_common())

    def by_flow(self) -> Counter[UUID]:
        return self._flows

    def by_deployment(self) -> Counter[UUID]:
        return self._deployments


def first_match(rules: tuple[Rule, ...], run: RunFacts) -> int | None:
    """The index of the rule that decides for ``run``, if any does."""
    for index, rule in enumerate(rules):
        if rule.selection.matches(run):
            return index
    return None


class Sorting:
    """``sort_out`` one run at a time, for runs streamed from a database or pages."""

    def __init__(self, rules: tuple[Rule, ...], *, oldest_first: bool = False) -> None:
        if oldest_first and any(rule.ranks for rule in rules):
            raise ValueError("keep-last-N ranks newest first: read the runs newest first")
        self.rules = rules
        self.oldest_first = oldest_first
        self.ruling = Ruling(tallies=[Tally(rule.name) for rule in rules])
        self._ranks: Counter[tuple[int, UUID]] = Counter()
        self._done = False

    def see(self, run: RunFacts) -> None:
        """Decide for ``run``; runs come newest first (oldest first when no rule ranks)."""
        index = first_match(self.rules, run)
        if index is None:
            return
        rule, tally = self.rules[index], self.ruling.tallies[index]
        tally.matched += 1
        self._ranks[index, run.group] += 1
        if rule.keeps_all or run.end_time is None or run.end_time >= rule.selection.cutoff:
            return
        if rule.keep_last is not None and self._ranks[index, run.group] <= rule.keep_last:
            tally.kept_by_count += 1
            return
        if rule.selection.is_protected(run.tags):
            tally.protected += 1
            return
        tally.going += 1
        if self.ruling.newest_end is None:
            self.ruling.newest_end = run.end_time
        self.ruling.add(run, index)

    def done(self) -> Ruling:
        """The decision, the runs that go oldest first: the order the deletion takes."""
        if not self._done:
            ruling = self.ruling
            if self.oldest_first:  # roughly oldest first: made exact here
                ruling.reorder(ruling.oldest_first_order())
                if ruling.eligible:
                    ruling.newest_end = ruling.end(ruling.eligible - 1)
            else:
                ruling.reorder(range(ruling.eligible - 1, -1, -1))
        self._done = True
        return self.ruling


def sort_out(rules: tuple[Rule, ...], newest_first: Iterable[RunFacts]) -> Ruling:
    """Decide for each run, given newest first (the order keep-last-N ranks in)."""
    sorting = Sorting(rules)
    for run in newest_first:
        sorting.see(run)
    return sorting.done()


@dataclass(frozen=True)
class Policy:
    """The resolved flow-run rules in order, the last one the config's own fields."""

    rules: tuple[Rule, ...]
    limit: int
    at: datetime = field(default_factory=lambda: now("UTC"))
    """The moment the cutoffs were fixed: when the preview was made."""

    @classmethod
    def single(cls, selection: Selection) -> Policy:
        """One rule: what a config without rules means."""
        return cls((Rule("default", selection),), selection.limit)

    @property
    def default(self) -> Selection:
        return self.rules[-1].selection

    def still_goes(self, rule: int, run: Any) -> bool:
        """The check at delete time, on what the server just returned: the run still
        qualifies under the rule that let it go, and no earlier rule claims it now."""
        if not self.rules[rule].selection.is_deletable(run):
            return False
        return not any(earlier.selection.matches(run) for earlier in self.rules[:rule])

    def still_goes_sql(self, db: PrefectDBInterface, rule: int) -> sa.ColumnElement[bool]:
        """``still_goes`` in SQL."""
        import sqlalchemy as sa

        conditions = [self.rules[rule].selection.sql_condition(db)]
        # CASE, not NOT: a run without a deployment makes ``deployment_id IN (...)``
        # NULL, and NOT NULL would leave it out of the rule that does decide for it.
        conditions.extend(
            sa.not_(sa.case((earlier.selection.match_sql(db), True), else_=False))
            for earlier in self.rules[:rule]
        )
        return sa.and_(*conditions)


async def resolve_policy(
    config: RetentionConfig,
    client: PrefectClient,
    at: datetime | None = None,
    deployment_id: UUID | None = None,
) -> Policy:
    """The config's rules with names turned into ids and cutoffs fixed at ``at``; the
    config's own fields are the last rule. Unknown names are errors naming the rule."""
    at = at or now("UTC")
    default = await resolve(config, client, at=at, deployment_id=deployment_id)
    rules: list[Rule] = []
    for index, spec in enumerate(config.rules):
        name = spec.name or f"rule {index + 1}"
        match = spec.match
        scope = await resolve_scope(
            client, match.flows, match.deployments, match.work_pools, where=f"rules[{index}]"
        )
        selection = Selection(
            cutoff=at - timedelta(days=spec.retention_days or 0),
            states=tuple(state.value for state in match.states) or tuple(TERMINAL),
            protected_tags=default.protected_tags,
            tags=tuple(match.tags) or None,
            limit=default.limit,
            **scope,
        )
        rules.append(Rule(name, selection, spec.keep_last, keeps_all=spec.keeps_all))
    rules.append(Rule("default", default))
    return Policy(tuple(rules), default.limit, at)
