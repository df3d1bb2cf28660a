"""Prefect Cloud's three metrics (lateness, duration, successes), computed on OSS.

Each looks back over the rule's ``range`` at flow runs expected to start in
it, through the same endpoints the Prefect UI's dashboard uses: the database
does the arithmetic. The bundle's own flows are left out (see ``OWN_FLOWS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from triggers.base import SpecModel
from triggers.metrics.base import Metric, Source
from triggers.metrics.runs import RunScope, post, scope_filters
from triggers.units import Unit

FINISHED = ("COMPLETED", "FAILED", "CRASHED")
"""Runs that ran to an end by themselves; cancelled runs say nothing about health."""

OWN_FLOWS = ("metric-probe", "database-cleanup")
"""The bundle's own flows: a probe every minute is 1,440 quick, successful runs a
day, which would otherwise swamp the averages of the workloads being watched.
Left out unless a query names them in ``flows``."""


async def _scope(source: Source, scope: RunScope) -> dict[str, Any] | None:
    """``scope_filters`` without the bundle's own flows."""
    body = await scope_filters(source, scope)
    own = [name for name in OWN_FLOWS if name not in scope.flows]
    if body is None or not own:
        return body
    flows = await post(source, "/flows/filter", {"flows": {"name": {"any_": own}}})
    if flows:
        body.setdefault("flows", {})["id"] = {"not_any_": [flow["id"] for flow in flows]}
    return body


def _window_filter(source: Source, scope: RunScope, window: timedelta) -> dict[str, Any]:
    found: dict[str, Any] = {
        "expected_start_time": {
            "after_": (source.now - window).isoformat(),
            "before_": source.now.isoformat(),
        }
    }
    if scope.tags:
        found["tags"] = {"all_": scope.tags}
    return found


@dataclass
class _Finished:
    """Flow runs of the window that finished: how many, how many Completed, their run time."""

    count: int = 0
    completed: int = 0
    run_time: float = 0.0


async def _finished(source: Source, scope: RunScope, window: timedelta) -> _Finished | None:
    """From the run history over the whole window; ``None`` when no run finished in it."""
    body = await _scope(source, scope)
    if body is None:
        return None
    tags = {"tags": {"all_": scope.tags}} if scope.tags else {}
    body |= {
        "history_start": (source.now - window).isoformat(),
        "history_end": source.now.isoformat(),
        "history_interval_seconds": window.total_seconds(),
        "flow_runs": tags,
    }
    found = _Finished()
    for interval in await post(source, "/flow_runs/history", body):
        for state in interval["states"]:
            if state["state_type"] in FINISHED:
                found.count += state["count_runs"]
                found.run_time += state["sum_estimated_run_time"]
            if state["state_type"] == "COMPLETED":
                found.completed += state["count_runs"]
    return found if found.count else None


class _Windowed(Metric):
    query_model: ClassVar[type[SpecModel]] = RunScope
    windowed = True


class FlowRunLateness(_Windowed):
    name = "flow_runs.lateness"
    unit = Unit.SECONDS
    description = (
        "Average seconds late of flow runs expected to start within the range "
        "(runs on time count as 0; runs still waiting count until now)."
    )

    async def measure(self, source: Source, query: RunScope, window: timedelta) -> float | None:
        body = await _scope(source, query)
        if body is None:
            return None
        body["flow_runs"] = _window_filter(source, query, window)
        value = await post(source, "/flow_runs/lateness", body)
        return None if value is None else max(0.0, float(value))


class FlowRunDuration(_Windowed):
    name = "flow_runs.duration"
    unit = Unit.SECONDS
    description = (
        "Average run time of flow runs expected to start within the range that "
        "finished (Completed, Failed or Crashed)."
    )

    async def measure(self, source: Source, query: RunScope, window: timedelta) -> float | None:
        finished = await _finished(source, query, window)
        return None if finished is None else finished.run_time / finished.count


class FlowRunSuccessRate(_Windowed):
    name = "flow_runs.success_rate"
    unit = Unit.PERCENT
    description = (
        "Percent of the flow runs expected to start within the range that finished "
        "Completed, among those that finished (Completed, Failed or Crashed)."
    )

    async def measure(self, source: Source, query: RunScope, window: timedelta) -> float | None:
        finished = await _finished(source, query, window)
        return None if finished is None else 100.0 * finished.completed / finished.count
