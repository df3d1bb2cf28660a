"""Metrics counted through the API: flow runs and task runs, with filters.

Counting goes through the server's count endpoints, one request each,
whatever the number of runs: the database does the counting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, ClassVar

from prefect.client.schemas.objects import StateType
from pydantic import BeforeValidator, Field

from triggers.base import SpecModel
from triggers.metrics.base import Metric, MetricUnavailable, Source
from triggers.units import Duration, Unit


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


StateTypeName = Annotated[StateType, BeforeValidator(_upper)]


class RunScope(SpecModel):
    """Which runs a metric looks at; every filter given must match."""

    flows: list[str] = Field(default_factory=list, description="Only runs of these flows.")
    deployments: list[str] = Field(
        default_factory=list,
        description="Only runs of these deployments, as flow-name/deployment-name.",
    )
    tags: list[str] = Field(
        default_factory=list, description="Only runs carrying every one of these tags."
    )


class RunCountQuery(RunScope):
    states: list[StateTypeName] = Field(
        default_factory=list,
        description="Only runs in these state types: COMPLETED, FAILED, CANCELLED, CRASHED, "
        "RUNNING, SCHEDULED, PENDING, PAUSED, CANCELLING.",
    )
    state_names: list[str] = Field(
        default_factory=list, description="Only runs in states of these names, e.g. Late."
    )
    older_than: Duration | None = Field(
        None,
        description="Only runs that ended more than this long ago (for example 30d); "
        "runs that have not ended are then left out, as the cleanup's retention does.",
    )


async def scope_filters(source: Source, scope: RunScope) -> dict[str, Any] | None:
    """The filter body for ``scope``; ``None`` when no named deployment exists."""
    body: dict[str, Any] = {}
    if scope.flows:
        body["flows"] = {"name": {"any_": scope.flows}}
    if scope.deployments:
        ids = [str(i) for i in await _deployment_ids(source, scope.deployments)]
        if not ids:
            return None
        body["deployments"] = {"id": {"any_": ids}}
    return body


def run_filter(source: Source, query: RunCountQuery) -> dict[str, Any]:
    """The part that FlowRunFilter and TaskRunFilter share, in their JSON form."""
    found: dict[str, Any] = {}
    if query.tags:
        found["tags"] = {"all_": query.tags}
    state: dict[str, Any] = {}
    if query.states:
        state["type"] = {"any_": [s.value for s in query.states]}
    if query.state_names:
        state["name"] = {"any_": query.state_names}
    if state:
        found["state"] = state
    if query.older_than is not None:
        found["end_time"] = {"before_": (source.now - query.older_than).isoformat()}
    return found


async def post(source: Source, path: str, body: dict[str, Any]) -> Any:
    import httpx

    try:
        response = await source.client._client.post(path, json=body)
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise MetricUnavailable(
            f"POST {path} answered {exc.response.status_code}: {exc.response.text[:200]}"
        ) from exc
    except httpx.HTTPError as exc:
        raise MetricUnavailable(f"POST {path} failed: {type(exc).__name__}: {exc}") from exc
    return response.json()


async def _deployment_ids(source: Source, names: list[str]) -> list[str]:
    from prefect.exceptions import ObjectNotFound

    found = []
    for name in names:
        try:
            deployment = await source.client.read_deployment_by_name(name)
        except ObjectNotFound:
            continue  # not deployed (yet): it has no runs to count
        found.append(str(deployment.id))
    return found


class _RunCount(Metric):
    unit = Unit.COUNT
    query_model: ClassVar[type[SpecModel]] = RunCountQuery
    runs: ClassVar[str]
    """``flow_runs`` or ``task_runs``: the count endpoint and the filter the query fills."""

    async def measure(self, source: Source, query: RunCountQuery, window: timedelta) -> float:
        body = await scope_filters(source, query)
        if body is None:
            return 0.0
        body[self.runs] = run_filter(source, query)
        return float(await post(source, f"/{self.runs}/count", body))


class FlowRunCount(_RunCount):
    name = "flow_runs.count"
    description = "How many flow runs match the query (states, age, tags, flows, deployments)."
    runs = "flow_runs"


class TaskRunCount(_RunCount):
    name = "task_runs.count"
    description = (
        "How many task runs match the query (states, age, tags; flows and deployments "
        "of their flow runs)."
    )
    runs = "task_runs"
