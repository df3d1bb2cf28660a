"""The rules' decision alone, on runs made up here: order, keep-last-N, protection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from flows.cleanup.manifest import Manifest
from flows.cleanup.rules import Rule, Ruling, RunFacts, Sorting, sort_out
from flows.cleanup.selection import Selection

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")
FLOW = uuid.uuid4()


def run(
    days: float,
    state: str = "COMPLETED",
    deployment: UUID | None = None,
    tags: tuple[str, ...] = (),
    flow: UUID = FLOW,
) -> RunFacts:
    return RunFacts(
        id=uuid.uuid4(),
        flow_id=flow,
        deployment_id=deployment,
        work_queue_id=None,
        state_type=state,
        tags=tags,
        end_time=NOW - timedelta(days=days),
    )


def rule(
    name: str,
    days: float = 0,
    states: tuple[str, ...] = TERMINAL,
    keep_last: int | None = None,
    keeps_all: bool = False,
) -> Rule:
    selection = Selection(
        cutoff=NOW - timedelta(days=days), states=states, protected_tags=("keep*",)
    )
    return Rule(name, selection, keep_last, keeps_all=keeps_all)


def newest_first(runs: list[RunFacts]) -> list[RunFacts]:
    return sorted(runs, key=lambda r: r.end_time or NOW, reverse=True)


def going(ruling: Ruling) -> list[tuple[UUID, int | None]]:
    """The runs that may go, in order, each with its rule: what the manifest takes."""
    ids, rules = ruling.packed(ruling.eligible)
    return Manifest(packed_ids=ids, packed_rules=rules).batch(0, ruling.eligible)


def going_ids(ruling: Ruling) -> list[UUID]:
    return [run_id for run_id, _ in going(ruling)]


def test_the_first_rule_that_matches_decides_whatever_a_later_one_says() -> None:
    failed_recent, failed_old = run(40, "FAILED"), run(100, "FAILED")
    completed_recent, completed_old = run(3, "COMPLETED"), run(40, "COMPLETED")
    rules = (rule("failures 90 days", 90, states=("FAILED",)), rule("default", 7))

    ruling = sort_out(
        rules, newest_first([failed_recent, failed_old, completed_recent, completed_old])
    )

    assert set(going_ids(ruling)) == {failed_old.id, completed_old.id}
    assert [(t.name, t.matched, t.going) for t in ruling.tallies] == [
        ("failures 90 days", 2, 1),
        ("default", 2, 1),
    ]


def test_keep_last_keeps_exactly_the_newest_n_of_each_deployment() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    runs_a = [run(day, deployment=a) for day in range(10, 16)]  # 6 runs
    runs_b = [run(day, deployment=b) for day in range(10, 13)]  # 3 runs
    no_deployment = [run(day) for day in range(10, 14)]  # 4 runs, counted per flow
    ruling = sort_out((rule("last 3", keep_last=3),), newest_first(runs_a + runs_b + no_deployment))

    assert set(going_ids(ruling)) == {r.id for r in runs_a[3:] + no_deployment[3:]}
    assert ruling.tallies[0].kept_by_count == 3 + 3 + 3


def test_keep_last_with_a_retention_needs_both_to_let_a_run_go() -> None:
    runs = [run(day) for day in (1, 2, 20, 40, 50)]
    ruling = sort_out((rule("30 days, last 2", 30, keep_last=2),), newest_first(runs))
    # The newest two are kept by count, the 20-day one by age; 40 and 50 go.
    assert set(going_ids(ruling)) == {runs[3].id, runs[4].id}


def test_protected_runs_are_kept_under_every_rule_and_still_rank() -> None:
    kept = run(50, tags=("Keep-Forever",))
    others = [run(day) for day in (60, 70)]
    ruling = sort_out(
        (rule("failures", 1, states=("FAILED",)), rule("last 1", keep_last=1)),
        newest_first([kept, *others]),
    )
    # The protected run is the newest, so it is the one kept by count as well.
    assert set(going_ids(ruling)) == {others[0].id, others[1].id}
    assert ruling.tallies[1].kept_by_count == 1
    protected = sort_out((rule("all", 0),), newest_first([kept, *others]))
    assert kept.id not in set(going_ids(protected))
    assert protected.protected == 1
    assert protected.matching == 3


def test_a_rule_with_neither_retention_nor_count_keeps_what_it_matches() -> None:
    audit = run(400, "FAILED")
    ordinary = run(400)
    rules = (rule("failures forever", states=("FAILED",), keeps_all=True), rule("default", 30))
    ruling = sort_out(rules, newest_first([audit, ordinary]))
    assert going_ids(ruling) == [ordinary.id]


def test_the_runs_that_go_come_oldest_first_for_the_deletion() -> None:
    runs = [run(day) for day in (31, 90, 45, 60)]
    ruling = sort_out((rule("30 days", 30),), newest_first(runs))
    ends = [ruling.end(position) for position in range(ruling.eligible)]
    assert ends == sorted(ends)
    assert len(ends) == 4
    assert ruling.newest_end == NOW - timedelta(days=31)


def test_read_oldest_first_without_ranking_the_decision_is_the_same() -> None:
    runs = [run(day) for day in (31, 90, 45, 60, 3)]
    rules = (rule("30 days", 30),)
    newest = sort_out(rules, newest_first(runs))
    sorting = Sorting(rules, oldest_first=True)
    for one in reversed(newest_first(runs)):
        sorting.see(one)
    oldest = sorting.done()
    assert going_ids(oldest) == going_ids(newest)
    assert oldest.newest_end == newest.newest_end


def test_runs_read_roughly_oldest_first_end_in_end_then_id_order_each_with_its_rule() -> None:
    deployment = uuid.uuid4()
    tied = [run(40) for _ in range(5)]
    failed = run(35, state="FAILED", deployment=deployment)
    oldest = run(50)
    rules = (rule("failures", 30, states=("FAILED",)), rule("30 days", 30))
    sorting = Sorting(rules, oldest_first=True)
    for one in [tied[3], failed, oldest, *tied[:3], tied[4]]:
        sorting.see(one)
    ruling = sorting.done()

    expected = [oldest, *sorted(tied, key=lambda r: str(r.id)), failed]
    assert going(ruling) == [(r.id, 0 if r is failed else 1) for r in expected]
    assert ruling.by_state() == {"COMPLETED": 6, "FAILED": 1}
    assert ruling.by_deployment() == {deployment: 1}
    assert (ruling.oldest_end, ruling.newest_end) == (
        NOW - timedelta(days=50),
        NOW - timedelta(days=35),
    )
    ids, packed_rules = ruling.packed(2)
    assert Manifest(packed_ids=ids, packed_rules=packed_rules).batch(0, 10) == [
        (oldest.id, 1),
        (expected[1].id, 1),
    ]


def test_keep_last_cannot_be_read_oldest_first() -> None:
    with pytest.raises(ValueError, match="newest first"):
        Sorting((rule("last 2", keep_last=2),), oldest_first=True)
