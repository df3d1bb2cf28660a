"""What a cleanup would delete, measured before anyone is asked.

Everything is counted through the API with the ``Selection`` (so the preview
works on any server), in a number of requests that does not grow with the
number of runs: counts per state, flow and deployment, the runs the deletion
would take first as a sample, and estimates of their child rows. Protected
runs are paged through and subtracted; they are expected to be few.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowFilter,
    FlowFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from pydantic import BaseModel, Field

from flows.cleanup.selection import Selection
from triggers import api

PAGE = 200  # the server's default maximum page size
TOP = 15  # flows and deployments listed by name; the rest are summed as "others"
SAMPLE = 10
MAX_SAMPLE_LOGS = 5000  # log lines read to estimate the logs per run


class Count(BaseModel):
    name: str = Field(description="Flow name, or 'flow/deployment'.")
    runs: int = Field(description="Runs this cleanup would delete.")


class SampleRun(BaseModel):
    id: UUID = Field(description="Flow run id.")
    name: str = Field(description="Flow run name.")
    flow: str = Field(description="Flow name.")
    state: str = Field(description="State name, e.g. Completed.")
    end_time: datetime | None = Field(description="When the run ended.")
    tags: list[str] = Field(description="The run's tags.")


class Preview(BaseModel):
    """The facts an approver needs; also the payload of ``janitor.cleanup.previewed``."""

    cutoff: datetime = Field(description="Runs that ended before this may be deleted.")
    retention_days: float = Field(description="The retention the cutoff came from.")
    states: list[str] = Field(description="Terminal state types being cleaned.")
    scope: dict[str, list[str]] = Field(description="Flows, deployments, tags, pools in scope.")
    protected_tags: list[str] = Field(description="Runs with any of these tags are kept.")
    matching: int = Field(description="Runs in scope, in those states, ended before the cutoff.")
    protected: int = Field(description="Of those, runs kept because of a protected tag.")
    eligible: int = Field(description="Runs that may be deleted: matching minus protected.")
    to_delete: int = Field(description="Runs this cleanup would delete: eligible, capped.")
    max_runs: int = Field(description="The cap on runs per cleanup.")
    by_state: dict[str, int] = Field(description="Eligible runs per state type.")
    by_flow: list[Count] = Field(description="Eligible runs per flow, largest first.")
    by_deployment: list[Count] = Field(description="Eligible runs per deployment, largest first.")
    oldest_end: datetime | None = Field(description="End time of the oldest run to delete.")
    newest_end: datetime | None = Field(description="End time of the newest eligible run.")
    sample: list[SampleRun] = Field(description="The first runs the deletion would take.")
    task_runs: int = Field(description="Estimated task runs deleted with them.")
    logs: int = Field(description="Estimated log lines deleted with them.")
    database_bytes: int | None = Field(None, description="Database size now, when measurable.")
    manifest_hash: str = Field(
        "", description="The hash of the manifest: exactly the runs an approval lets go."
    )

    @property
    def nothing_to_do(self) -> bool:
        return self.to_delete == 0


async def make_preview(
    client: PrefectClient, selection: Selection, retention_days: float
) -> Preview:
    filters = selection.read_filters()
    matching = 0 if selection.empty_scope else await client.count_flow_runs(**filters)
    protected = await _protected_tally(client, selection) if matching else _Tally()
    eligible = max(0, matching - protected.runs)
    by_state: dict[str, int] = {}
    flows: list[Count] = []
    deployments: list[Count] = []
    sample: list[FlowRun] = []
    newest = None
    task_runs = logs = 0.0
    if eligible:
        for state in selection.states:
            one_state = replace(selection, states=(state,))
            count = await client.count_flow_runs(**one_state.read_filters())
            count -= protected.states[state]
            if count:
                by_state[state] = count
        flows = await _by_flow(client, selection, protected)
        deployments = await _by_deployment(client, selection, protected)
        sample = await _first_runs(client, selection)
        newest = await _newest_end(client, selection)
        task_runs, logs = await _children(client, selection, sample, eligible, protected)
    to_delete = min(eligible, selection.limit)
    return Preview(
        cutoff=selection.cutoff,
        retention_days=retention_days,
        states=list(selection.states),
        scope=selection.labels,
        protected_tags=list(selection.protected_tags),
        matching=matching,
        protected=protected.runs,
        eligible=eligible,
        to_delete=to_delete,
        max_runs=selection.limit,
        by_state=by_state,
        by_flow=flows,
        by_deployment=deployments,
        oldest_end=min((run.end_time for run in sample if run.end_time), default=None),
        newest_end=newest,
        sample=[await _sample_run(client, run) for run in sample[:SAMPLE]],
        task_runs=round(task_runs * to_delete / eligible) if eligible else 0,
        logs=round(logs * to_delete / eligible) if eligible else 0,
    )


class _Tally:
    def __init__(self) -> None:
        self.runs = 0
        self.states: Counter[str] = Counter()
        self.flows: Counter[UUID] = Counter()
        self.deployments: Counter[UUID | None] = Counter()
        self.ids: list[UUID] = []


async def _protected_tally(client: PrefectClient, selection: Selection) -> _Tally:
    tally = _Tally()
    if not selection.protected_tags:
        return tally
    filters = selection.tagged_filters()
    offset = 0
    while True:
        page = await client.read_flow_runs(
            **filters, sort=FlowRunSort.ID_DESC, limit=PAGE, offset=offset
        )
        for run in page:
            if selection.in_tag_scope(run) and selection.is_protected(run.tags):
                tally.ids.append(run.id)
                tally.runs += 1
                tally.states[run.state_type.value if run.state_type else ""] += 1
                tally.flows[run.flow_id] += 1
                tally.deployments[run.deployment_id] += 1
        if len(page) < PAGE:
            return tally
        offset += PAGE


async def _by_flow(client: PrefectClient, selection: Selection, protected: _Tally) -> list[Count]:
    filters = selection.read_filters()
    flows = await client.read_flows(
        flow_run_filter=filters["flow_run_filter"],
        flow_filter=filters.get("flow_filter"),
        limit=PAGE,
    )
    counts = []
    for flow in flows:
        scoped = dict(filters, flow_filter=FlowFilter(id=FlowFilterId(any_=[flow.id])))
        runs = await client.count_flow_runs(**scoped) - protected.flows[flow.id]
        if runs:
            counts.append(Count(name=flow.name, runs=runs))
    return _top(counts)


async def _by_deployment(
    client: PrefectClient, selection: Selection, protected: _Tally
) -> list[Count]:
    filters = selection.read_filters()
    deployments = await client.read_deployments(
        flow_run_filter=filters["flow_run_filter"], limit=PAGE
    )
    names = {flow.id: flow.name for flow in await client.read_flows(limit=PAGE)}
    counts = []
    for deployment in deployments:
        scoped = dict(
            filters, deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )
        runs = await client.count_flow_runs(**scoped) - protected.deployments[deployment.id]
        if runs:
            name = f"{names.get(deployment.flow_id, '?')}/{deployment.name}"
            counts.append(Count(name=name, runs=runs))
    return _top(counts)


def _top(counts: list[Count]) -> list[Count]:
    counts.sort(key=lambda count: (-count.runs, count.name))
    if len(counts) <= TOP:
        return counts
    rest = sum(count.runs for count in counts[TOP:])
    return [*counts[:TOP], Count(name=f"({len(counts) - TOP} others)", runs=rest)]


async def _first_runs(client: PrefectClient, selection: Selection) -> list[FlowRun]:
    """The runs the deletion takes first (oldest), protected ones left out."""
    runs: list[FlowRun] = []
    offset = 0
    while len(runs) < SAMPLE:
        page = await client.read_flow_runs(
            **selection.read_filters(),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=PAGE,
            offset=offset,
        )
        runs.extend(run for run in page if selection.is_deletable(run))
        if len(page) < PAGE:
            break
        offset += PAGE
    return runs[:SAMPLE]


async def _newest_end(client: PrefectClient, selection: Selection) -> datetime | None:
    page = await client.read_flow_runs(
        **selection.read_filters(), sort=FlowRunSort.END_TIME_DESC, limit=PAGE
    )
    return next((run.end_time for run in page if selection.is_deletable(run)), None)


async def _children(
    client: PrefectClient,
    selection: Selection,
    sample: list[FlowRun],
    eligible: int,
    protected: _Tally,
) -> tuple[float, float]:
    """Task runs are counted (protected runs' subtracted); logs are estimated from the sample."""
    if selection.work_queue_ids is not None:
        # Task-run counts cannot filter on work queues: estimate from the sample.
        of_sample = FlowRunFilter(id=FlowRunFilterId(any_=[run.id for run in sample]))
        counted = await _count_task_runs(client, {"flow_run_filter": of_sample})
        per_run = counted / len(sample) if sample else 0.0
        task_runs = per_run * eligible
    else:
        task_runs = await _count_task_runs(client, selection.read_filters())
    if protected.ids and selection.work_queue_ids is None:
        kept = 0
        for start in range(0, len(protected.ids), PAGE):
            ids = protected.ids[start : start + PAGE]
            kept += await _count_task_runs(
                client, {"flow_run_filter": FlowRunFilter(id=FlowRunFilterId(any_=ids))}
            )
        task_runs = max(0, task_runs - kept)
    logs = 0.0
    if sample:
        sample_logs = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id for run in sample]))
        lines = 0
        for offset in range(0, MAX_SAMPLE_LOGS, PAGE):
            page = await client.read_logs(log_filter=sample_logs, limit=PAGE, offset=offset)
            lines += len(page)
            if len(page) < PAGE:
                break
        logs = lines / len(sample) * eligible
    return task_runs, logs


async def _count_task_runs(client: PrefectClient, filters: dict[str, Any]) -> int:
    body: dict[str, Any] = {
        "flow_runs": filters["flow_run_filter"].model_dump(mode="json", exclude_unset=True)
    }
    if "flow_filter" in filters:
        body["flows"] = filters["flow_filter"].model_dump(mode="json", exclude_unset=True)
    return await api.count_runs(client, "task_runs", body)


async def _sample_run(client: PrefectClient, run: FlowRun) -> SampleRun:
    flow = await client.read_flow(run.flow_id)
    return SampleRun(
        id=run.id,
        name=run.name,
        flow=flow.name,
        state=run.state_name or (run.state_type.value if run.state_type else "?"),
        end_time=run.end_time,
        tags=list(run.tags),
    )
