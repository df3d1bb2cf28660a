"""Deciding, for one rule and one measurement, whether a breach fires or resolves.

Pure: the state comes in, the new state and at most one event come out, so
the rules of an episode are tested without a server and the probe only
measures, calls this, emits and saves. One episode fires once (after
``firing_for``), again only every ``repeat_after`` if set, and resolves once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from triggers.metrics.rule import Rule


class RuleState(BaseModel):
    """What the probe remembers of a rule between runs (kept on the server)."""

    fingerprint: str = Field(description="What was measured; a change starts afresh.")
    breach_since: datetime | None = Field(None, description="When the current breach began.")
    firing: bool = Field(False, description="Whether firing was emitted for this episode.")
    fired_at: datetime | None = Field(None, description="When firing was last emitted.")


Transition = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Decision:
    state: RuleState
    emit: Transition | None = None
    repeat: bool = False
    """A repeated firing of an episode that already fired (``repeat_after``)."""
    since: datetime | None = None
    """When the breach began (for firing and resolved events)."""


def evaluate(rule: Rule, value: float | None, state: RuleState | None, now: datetime) -> Decision:
    """``value`` is ``None`` when the metric was unavailable or had no data:
    then nothing changes, so a flaky measurement neither fires nor resolves."""
    if state is None or state.fingerprint != rule.fingerprint:
        state = RuleState(fingerprint=rule.fingerprint)
    if value is None:
        return Decision(state)
    if not rule.breached(value):
        fresh = RuleState(fingerprint=rule.fingerprint)
        if state.firing:
            return Decision(fresh, "resolved", since=state.breach_since)
        return Decision(fresh)
    since = state.breach_since or now
    if not state.firing:
        if now - since >= rule.firing_for:
            fired = RuleState(
                fingerprint=rule.fingerprint, breach_since=since, firing=True, fired_at=now
            )
            return Decision(fired, "firing", since=since)
        return Decision(state.model_copy(update={"breach_since": since}))
    repeat_after = rule.repeat_after
    if (
        repeat_after is not None
        and state.fired_at is not None
        and now - state.fired_at >= repeat_after
    ):
        return Decision(
            state.model_copy(update={"fired_at": now}), "firing", repeat=True, since=since
        )
    return Decision(state)
