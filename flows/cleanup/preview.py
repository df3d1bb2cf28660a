"""What a cleanup would delete, measured before anyone is asked.

The flow runs are the rules' decision (``flows.cleanup.rules``), made once
over every finished top-level run and fixed in the manifest: the preview
reports that decision per rule, state, flow and deployment, with the runs
the deletion takes first and the rows that go with them. The other targets
count their rows in the database, and the tables' own statistics
(``flows.cleanup.sizes``) turn rows into bytes against each table's total.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
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
from prefect.logging import get_logger
from pydantic import BaseModel, Field

from flows.cleanup.archiving import ArchivePlan
from flows.cleanup.config import RetentionConfig
from flows.cleanup.manifest import Manifest
from flows.cleanup.rules import Policy, Ruling
from flows.cleanup.sizes import TableSize, table_sizes
from flows.cleanup.targets import make_targets
from flows.cleanup.targets.flow_runs import count_rows
from flows.cleanup.targets.target import Rows, Target, capped_rows
from flows.database import Database
from triggers import api

PAGE = 200  # the server's default maximum page size
TOP = 15  # flows and deployments listed by name; the rest are summed as "others"
SAMPLE = 10
COUNT_SLICE = 5_000  # runs whose rows one pass counts (each query takes 500 ids at a time)
MAX_SAMPLE_LOGS = 5000  # log lines read to estimate the logs per run (API path)
FIX_DATABASE = (
    "set PREFECT_SERVER_DATABASE_CONNECTION_URL in the worker's environment to the "
    "server's database (and deletion: auto)"
)
logger = get_logger("janitor.preview")


class Count(BaseModel):
    name: str = Field(description="Flow name, or 'flow/deployment'.")
    runs: int = Field(description="Runs this cleanup would delete.")


class RuleCount(BaseModel):
    """What one flow-run rule decided."""

    name: str = Field(description="The rule's name; 'default' is the config's own fields.")
    matched: int = Field(
        description="Finished top-level runs this rule decided for, among those read: "
        "runs that no rule could let go (too recent for every rule that deletes) are "
        "not read, so a rule that keeps everything shows only those it shadowed."
    )
    runs: int = Field(description="Of those, runs it lets go.")
    protected: int = Field(description="Runs it would let go but a protected tag keeps.")
    kept_by_count: int = Field(description="Old enough, but among the newest it keeps.")


class SampleRun(BaseModel):
    id: UUID = Field(description="Flow run id.")
    name: str = Field(description="Flow run name.")
    flow: str = Field(description="Flow name.")
    state: str = Field(description="State name, e.g. Completed.")
    end_time: datetime | None = Field(description="When the run ended.")
    tags: list[str] = Field(description="The run's tags.")
    rule: str = Field("", description="The rule that lets it go.")


class TargetCount(BaseModel):
    """What one target besides flow runs would lose."""

    key: str = Field(description="task_runs, events or orphans.")
    title: str = Field(description="What the target is, for a person.")
    rows: dict[str, int] = Field(description="Rows that would go, per table.")
    capped: bool = Field(False, description="More would qualify than max_rows lets go at once.")
    needs_database: str = Field(
        "", description="Why it cannot be counted or deleted from here, and the fix."
    )


class Preview(BaseModel):
    """The facts an approver needs; also the payload of ``janitor.cleanup.previewed``."""

    cutoff: datetime = Field(description="The default rule: runs ended before this may go.")
    retention_days: float = Field(description="The retention the cutoff came from.")
    states: list[str] = Field(description="Terminal state types the default rule cleans.")
    scope: dict[str, list[str]] = Field(description="Flows, deployments, tags, pools in scope.")
    protected_tags: list[str] = Field(description="Runs with any of these tags are kept.")
    matching: int = Field(description="Runs the rules would let go, protected ones included.")
    protected: int = Field(description="Of those, runs kept because of a protected tag.")
    eligible: int = Field(description="Runs that may be deleted: matching minus protected.")
    more_eligible: bool = Field(
        False,
        description="More runs may qualify than were counted: through the API the read "
        "stops once max_runs are found; the next cleanup takes the rest.",
    )
    to_delete: int = Field(description="Runs this cleanup would delete: eligible, capped.")
    max_runs: int = Field(description="The cap on runs per cleanup.")
    by_rule: list[RuleCount] = Field(default_factory=list, description="Per rule, in order.")
    by_state: dict[str, int] = Field(description="Eligible runs per state type.")
    by_flow: list[Count] = Field(description="Eligible runs per flow, largest first.")
    by_deployment: list[Count] = Field(description="Eligible runs per deployment, largest first.")
    oldest_end: datetime | None = Field(description="End time of the oldest run to delete.")
    newest_end: datetime | None = Field(description="End time of the newest eligible run.")
    sample: list[SampleRun] = Field(description="The first runs the deletion would take.")
    task_runs: int = Field(description="Task runs deleted with them.")
    logs: int = Field(description="Log lines deleted with them (an estimate on the API path).")
    targets: list[TargetCount] = Field(
        default_factory=list, description="Task runs without a flow, events, orphans."
    )
    tables: list[TableSize] = Field(
        default_factory=list, description="Per table: its size, and what would go from it."
    )
    going_bytes: int | None = Field(None, description="Estimated bytes of all that would go.")
    database_bytes: int | None = Field(None, description="Database size now, when measurable.")
    archive: ArchivePlan | None = Field(
        None, description="Where deleted rows are archived, and the archives pruned."
    )
    manifest_hash: str = Field(
        "", description="The hash of the manifest: exactly the runs an approval lets go."
    )

    @property
    def nothing_to_do(self) -> bool:
        return self.to_delete == 0 and not any(any(target.rows.values()) for target in self.targets)

    def rows_by_table(self) -> dict[str, int]:
        return {table.table: table.going_rows for table in self.tables if table.going_rows}


async def make_preview(
    client: PrefectClient,
    policy: Policy,
    ruling: Ruling,
    manifest: Manifest,
    retention_days: float,
    *,
    database: Database | None = None,
    deleter: Database | None = None,
    targets: Sequence[TargetCount] = (),
) -> Preview:
    """The decision made into facts a person can check, in a few requests.

    ``database`` measures the tables; ``deleter`` is the database the runs are
    deleted in, where every row that goes with them is counted exactly (through the
    API the server deletes those itself: task runs are counted, logs estimated).
    """
    default = policy.default
    flows = await _flow_names(client, set(ruling.by_flow()))
    deployments = await _deployment_names(client, set(ruling.by_deployment()), flows)
    first = manifest.ids(0, SAMPLE)
    rule_of = {run_id: rule for run_id, rule in manifest.batch(0, SAMPLE) if rule is not None}
    runs = await _read_runs(client, first)
    sample = [
        SampleRun(
            id=run.id,
            name=run.name,
            flow=flows.get(run.flow_id, "?"),
            state=run.state_name or (run.state_type.value if run.state_type else "?"),
            end_time=run.end_time,
            tags=list(run.tags),
            rule=policy.rules[rule_of[run.id]].name if run.id in rule_of else "",
        )
        for run in (runs[run_id] for run_id in first if run_id in runs)
    ]
    rows = await flow_run_rows(client, deleter, manifest)
    for target in targets:
        rows.update(target.rows)
    tables = await _tables(database, rows)
    return Preview(
        cutoff=default.cutoff,
        retention_days=retention_days,
        states=list(default.states),
        scope=default.labels,
        protected_tags=list(default.protected_tags),
        matching=ruling.matching,
        protected=ruling.protected,
        eligible=ruling.eligible,
        more_eligible=not ruling.complete,
        to_delete=len(manifest),
        max_runs=policy.limit,
        by_rule=[
            RuleCount(
                name=tally.name,
                matched=tally.matched,
                runs=tally.going,
                protected=tally.protected,
                kept_by_count=tally.kept_by_count,
            )
            for tally in ruling.tallies
        ],
        by_state=ruling.by_state(),
        by_flow=_top([Count(name=flows.get(k, "?"), runs=n) for k, n in ruling.by_flow().items()]),
        by_deployment=_top(
            [Count(name=deployments.get(k, "?"), runs=n) for k, n in ruling.by_deployment().items()]
        ),
        oldest_end=ruling.oldest_end if len(manifest) else None,
        newest_end=ruling.newest_end,
        sample=sample,
        task_runs=rows["task_run"],
        logs=rows["log"],
        targets=list(targets),
        tables=tables,
        going_bytes=sum(table.going_bytes for table in tables) if tables else None,
    )


async def flow_run_rows(
    client: PrefectClient, database: Database | None, manifest: Manifest
) -> Rows:
    """The rows that go with the manifest's runs, per table: counted in the database,
    or through the API (task runs counted, logs estimated from the first runs)."""
    rows = Rows({"flow_run": len(manifest)}) if len(manifest) else Rows()
    if not len(manifest):
        return rows
    if database is not None:
        counted = Rows()
        async with database.session() as session:
            for start in range(0, len(manifest), COUNT_SLICE):
                ids = manifest.ids(start, COUNT_SLICE)
                counted.update(await count_rows(session, database.db, ids))
        return counted
    for start in range(0, len(manifest), PAGE):
        body = {"flow_runs": {"id": {"any_": [str(i) for i in manifest.ids(start, PAGE)]}}}
        rows["task_run"] += await api.count_runs(client, "task_runs", body)
    sample = manifest.ids(0, SAMPLE)
    lines = 0
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=sample))
    for offset in range(0, MAX_SAMPLE_LOGS, PAGE):
        page = await client.read_logs(log_filter=log_filter, limit=PAGE, offset=offset)
        lines += len(page)
        if len(page) < PAGE:
            break
    rows["log"] = round(lines / len(sample) * len(manifest))
    return +rows


async def _read_runs(client: PrefectClient, ids: list[UUID]) -> dict[UUID, FlowRun]:
    if not ids:
        return {}
    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
    )
    return {run.id: run for run in runs}


async def _flow_names(client: PrefectClient, ids: set[UUID]) -> dict[UUID, str]:
    names: dict[UUID, str] = {}
    wanted = sorted(ids, key=str)
    for start in range(0, len(wanted), PAGE):
        flows = await client.read_flows(
            flow_filter=FlowFilter(id=FlowFilterId(any_=wanted[start : start + PAGE])),
            limit=PAGE,
        )
        names.update({flow.id: flow.name for flow in flows})
    return names


async def _deployment_names(
    client: PrefectClient, ids: set[UUID], flows: dict[UUID, str]
) -> dict[UUID, str]:
    names: dict[UUID, str] = {}
    wanted = sorted(ids, key=str)
    for start in range(0, len(wanted), PAGE):
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=wanted[start : start + PAGE])
            ),
            limit=PAGE,
        )
        for deployment in deployments:
            flow = (
                flows.get(deployment.flow_id) or (await client.read_flow(deployment.flow_id)).name
            )
            names[deployment.id] = f"{flow}/{deployment.name}"
    return names


def _top(counts: list[Count]) -> list[Count]:
    counts.sort(key=lambda count: (-count.runs, count.name))
    if len(counts) <= TOP:
        return counts
    rest = sum(count.runs for count in counts[TOP:])
    return [*counts[:TOP], Count(name=f"({len(counts) - TOP} others)", runs=rest)]


async def _tables(database: Database | None, rows: Rows) -> list[TableSize]:
    """Each table a cleanup deletes from, with what would go; where sizes are measurable."""
    if database is None:
        return []
    try:
        sizes = await table_sizes(database)
    except Exception as exc:  # a figure for the approver, never a reason to fail
        logger.warning("could not measure the tables (%s: %s)", type(exc).__name__, exc)
        return []
    return [
        size.with_going(rows.get(table, 0))
        for table, size in sorted(sizes.items(), key=lambda item: -item[1].bytes)
    ]


async def count_targets(
    config: RetentionConfig, policy: Policy, database: Database | None
) -> tuple[list[Target], list[TargetCount]]:
    """The other targets the config asks for, and what each would lose now. Without the
    database they are only named, with the fix: the API cannot delete them."""
    if not config.other_targets:
        return [], []
    if database is None:
        titles = {
            "task_runs": "task runs without a flow run",
            "events": "events",
            "orphans": "orphans (rows whose flow run is gone)",
        }
        counts = [
            TargetCount(key=key, title=titles[key], rows={}, needs_database=FIX_DATABASE)
            for key in config.other_targets
        ]
        return [], counts
    targets = await make_targets(config, policy.at, policy.default.protected_tags, database)
    counts = []
    for target in targets:
        rows = await target.count(database)
        counts.append(
            TargetCount(
                key=target.key,
                title=target.title,
                rows=dict(rows),
                capped=capped_rows(target, rows) > config.max_rows,
            )
        )
    return targets, counts
