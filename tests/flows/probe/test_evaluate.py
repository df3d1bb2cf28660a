"""Rule evaluation over successive probe runs: one firing per episode, then resolved."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from flows.probe.evaluate import Decision, RuleState, evaluate
from triggers.metrics.rule import Rule
from triggers.units import Unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def rule(**changes: object) -> Rule:
    fields: dict[str, object] = {
        "id": "big",
        "automation": "a",
        "metric": "database.size_bytes",
        "operator": ">",
        "threshold": 100.0,
        "unit": Unit.BYTES,
        "firing_for_seconds": 600.0,
    }
    return Rule.model_validate(fields | changes)


def run(r: Rule, values: Sequence[float | None], step: timedelta = MINUTE) -> list[Decision]:
    """One decision per probe run, each carrying the state to the next."""
    state: RuleState | None = None
    decisions = []
    for index, value in enumerate(values):
        decision = evaluate(r, value, state, T0 + index * step)
        decisions.append(decision)
        state = decision.state
    return decisions


def emitted(decisions: list[Decision]) -> list[tuple[int, str]]:
    return [(i, d.emit) for i, d in enumerate(decisions) if d.emit is not None]


def test_firing_waits_for_firing_for_then_fires_once() -> None:
    decisions = run(rule(), [150.0] * 20)
    assert emitted(decisions) == [(10, "firing")], "10 minutes after the breach began, once"
    assert decisions[10].since == T0


def test_a_breach_shorter_than_firing_for_never_fires() -> None:
    values = [150.0] * 9 + [50.0] + [150.0] * 9
    assert emitted(run(rule(), values)) == []


def test_resolved_once_when_the_breach_ends_and_a_new_episode_starts_fresh() -> None:
    values = [150.0] * 12 + [50.0] * 3 + [150.0] * 12
    decisions = run(rule(firing_for_seconds=0), values)
    assert emitted(decisions) == [(0, "firing"), (12, "resolved"), (15, "firing")]
    assert decisions[12].since == T0
    assert decisions[15].since == T0 + 15 * MINUTE


def test_a_breach_that_never_fired_ends_silently() -> None:
    decisions = run(rule(), [150.0] * 5 + [50.0] * 5)
    assert emitted(decisions) == []
    assert decisions[-1].state.breach_since is None


def test_no_value_neither_fires_nor_resolves() -> None:
    firing = run(rule(firing_for_seconds=0), [150.0, None, None, None])
    assert emitted(firing) == [(0, "firing")]
    assert firing[-1].state.firing, "an unavailable metric keeps the episode open"
    pending = run(rule(), [150.0] * 5 + [None] * 10)
    assert emitted(pending) == [], "unavailable minutes do not count towards firing_for"


def test_repeat_after_refires_no_more_often_than_asked() -> None:
    decisions = run(rule(firing_for_seconds=0, repeat_after_seconds=1800), [150.0] * 100)
    fired = [i for i, d in enumerate(decisions) if d.emit == "firing"]
    assert fired == [0, 30, 60, 90]
    assert [decisions[i].repeat for i in fired] == [False, True, True, True]
    assert all(decisions[i].since == T0 for i in fired)


def test_operators_compare_as_written() -> None:
    assert rule(operator="<", threshold=10).breached(9.0)
    assert not rule(operator="<", threshold=10).breached(10.0)
    assert rule(operator="<=", threshold=10).breached(10.0)
    assert rule(operator=">=", threshold=10).breached(10.0)
    assert not rule(operator=">", threshold=10).breached(10.0)


def test_a_threshold_edit_keeps_the_episode_but_a_new_metric_starts_afresh() -> None:
    state = run(rule(firing_for_seconds=0), [150.0])[-1].state
    assert state.firing
    edited = evaluate(rule(firing_for_seconds=0, threshold=120.0), 150.0, state, T0 + MINUTE)
    assert edited.emit is None, "still the same episode: no second firing"
    lowered = evaluate(rule(firing_for_seconds=0, threshold=200.0), 150.0, state, T0 + MINUTE)
    assert lowered.emit == "resolved", "the new threshold ends the breach"
    other = rule(firing_for_seconds=0, metric="database.table_rows", query={"table": "log"})
    moved = evaluate(other, 150.0, state, T0 + MINUTE)
    assert moved.emit == "firing", "another measurement is another episode"
