"""Which flow runs a cleanup may delete: one definition for the API and the database.

The safety invariants live here and nowhere else, whatever the config says:
only terminal states, only runs that ended before a cutoff fixed when the
preview was made, never a run carrying a protected tag. The API path and the
in-process database path both build their queries from a ``Selection``, and a
run is checked against it once more just before it is deleted.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterEndTime,
    FlowRunFilterId,
    FlowRunFilterParentTaskRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
    WorkPoolFilter,
    WorkPoolFilterName,
    WorkQueueFilter,
    WorkQueueFilterId,
)
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound
from prefect.types._datetime import now

from flows.cleanup.config import RetentionConfig
from flows.cleanup.policy import TERMINAL
from flows.errors import ScopeError

if TYPE_CHECKING:
    import sqlalchemy as sa
    from prefect.server.database import PrefectDBInterface


@dataclass(frozen=True)
class Selection:
    """A resolved, frozen description of the runs a cleanup may delete."""

    cutoff: datetime
    states: tuple[str, ...]
    protected_tags: tuple[str, ...] = ()
    flow_ids: tuple[UUID, ...] | None = None
    deployment_ids: tuple[UUID, ...] | None = None
    tags: tuple[str, ...] | None = None
    work_queue_ids: tuple[UUID, ...] | None = None
    limit: int = 10_000
    labels: dict[str, list[str]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        unsafe = [state for state in self.states if state not in TERMINAL]
        if unsafe or not self.states:
            raise ValueError(f"a cleanup may only select terminal states, not {unsafe or 'none'}")
        if self.cutoff.tzinfo is None:
            raise ValueError("the cutoff must be timezone-aware")

    @property
    def empty_scope(self) -> bool:
        """A scope that names work pools without queues matches nothing at all."""
        return self.work_queue_ids == ()

    def flow_run_filter(
        self, *, only: list[UUID] | None = None, exclude: list[UUID] | None = None
    ) -> FlowRunFilter:
        """The server-side filter; protected tags cannot be negated in it, see ``is_deletable``."""
        return FlowRunFilter(
            id=(
                FlowRunFilterId(any_=only, not_any_=exclude or None)
                if only is not None or exclude
                else None
            ),
            # Top-level runs only, as Prefect's own vacuum: a subflow run is judged with
            # its parent (whose tags it does not inherit) and becomes top-level once the
            # parent is deleted (the link is ON DELETE SET NULL).
            parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True),
            state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType(state) for state in self.states])
            ),
            end_time=FlowRunFilterEndTime(before_=self.cutoff, is_null_=False),
            deployment_id=(
                FlowRunFilterDeploymentId(any_=list(self.deployment_ids))
                if self.deployment_ids is not None
                else None
            ),
            tags=FlowRunFilterTags(any_=list(self.tags)) if self.tags else None,
        )

    def read_filters(
        self, *, only: list[UUID] | None = None, exclude: list[UUID] | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for ``read_flow_runs`` / ``count_flow_runs``."""
        filters: dict[str, Any] = {
            "flow_run_filter": self.flow_run_filter(only=only, exclude=exclude)
        }
        if self.flow_ids is not None:
            filters["flow_filter"] = FlowFilter(id={"any_": list(self.flow_ids)})
        if self.work_queue_ids is not None:
            filters["work_queue_filter"] = WorkQueueFilter(
                id=WorkQueueFilterId(any_=list(self.work_queue_ids))
            )
        return filters

    def is_protected(self, tags: Iterable[str]) -> bool:
        """Whether any tag matches a protected pattern (``keep``, ``keep*``, ``pin-?``),
        ignoring case: ``Keep`` and ``KEEP`` are as protected as ``keep``."""
        return any(
            fnmatchcase(tag.lower(), pattern.lower())
            for tag in tags
            for pattern in self.protected_tags
        )

    def matches(self, run: Any) -> bool:
        """Whether ``run`` (a ``FlowRun`` or ``RunFacts``) is in this selection's scope and
        states, whatever its age or tags: the runs a rule decides for."""
        state = getattr(run.state_type, "value", run.state_type)
        if state not in self.states or run.parent_task_run_id is not None:
            return False
        if self.flow_ids is not None and run.flow_id not in self.flow_ids:
            return False
        if self.deployment_ids is not None and run.deployment_id not in self.deployment_ids:
            return False
        if self.tags and not set(self.tags) & set(run.tags):
            return False
        return not (
            self.work_queue_ids is not None and run.work_queue_id not in self.work_queue_ids
        )

    def is_deletable(self, run: Any) -> bool:
        """The last check before a run is deleted, on what the server just returned."""
        if not self.matches(run) or run.end_time is None or run.end_time >= self.cutoff:
            return False
        return not self.is_protected(run.tags)

    def match_sql(self, db: PrefectDBInterface) -> sa.ColumnElement[bool]:
        """``matches`` in SQL: scope and states, top-level runs, whatever their age."""
        import sqlalchemy as sa

        conditions: list[sa.ColumnElement[bool]] = [
            db.FlowRun.parent_task_run_id.is_(None),
            db.FlowRun.state_type.in_(self.states),
        ]
        if self.flow_ids is not None:
            conditions.append(db.FlowRun.flow_id.in_(self.flow_ids))
        if self.deployment_ids is not None:
            conditions.append(db.FlowRun.deployment_id.in_(self.deployment_ids))
        if self.tags:
            conditions.append(tags_match(db, db.FlowRun.tags, self.tags, exact=True))
        if self.work_queue_ids is not None:
            conditions.append(db.FlowRun.work_queue_id.in_(self.work_queue_ids))
        return sa.and_(*conditions)

    def sql_condition(self, db: PrefectDBInterface) -> sa.ColumnElement[bool]:
        """The same selection as one SQL condition, protected tags included."""
        import sqlalchemy as sa
        from prefect.server.schemas import filters as server

        run_filter = server.FlowRunFilter.model_validate(
            self.flow_run_filter().model_dump(mode="json", exclude_none=True)
        )
        conditions: list[sa.ColumnElement[bool]] = [
            run_filter.as_sql_filter(),
            db.FlowRun.end_time.is_not(None),
            db.FlowRun.end_time < self.cutoff,
            db.FlowRun.state_type.in_(self.states),
        ]
        if self.protected_tags:
            conditions.append(sa.not_(tags_match(db, db.FlowRun.tags, self.protected_tags)))
        if self.flow_ids is not None:
            conditions.append(db.FlowRun.flow_id.in_(self.flow_ids))
        if self.work_queue_ids is not None:
            conditions.append(db.FlowRun.work_queue_id.in_(self.work_queue_ids))
        return sa.and_(*conditions)


def tags_match(
    db: PrefectDBInterface, tags: Any, patterns: Sequence[str], *, exact: bool = False
) -> sa.ColumnElement[bool]:
    """A JSON tag list holds a tag matching any of ``patterns``: globs (``*``, ``?``)
    ignoring case, as protected tags are; or, ``exact``, one of these very tags."""
    import sqlalchemy as sa

    dialect = db.database_config.connection_url.split(":", 1)[0].split("+", 1)[0]
    if dialect == "postgresql":
        each = sa.func.jsonb_array_elements_text(tags).table_valued("value")
    else:
        each = sa.func.json_each(tags).table_valued("value")
    if exact:
        matches = [each.c.value.in_(list(patterns))]
    elif dialect == "postgresql":
        matches = [
            sa.func.lower(each.c.value).like(_like(pattern.lower()), escape="\\")
            for pattern in patterns
        ]
    else:
        matches = [sa.func.lower(each.c.value).op("GLOB")(pattern.lower()) for pattern in patterns]
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(sa.or_(*matches)))


def _like(pattern: str) -> str:
    """A glob pattern (``*``, ``?``) as a LIKE pattern, LIKE's own wildcards escaped."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


async def resolve(
    config: RetentionConfig,
    client: PrefectClient,
    at: datetime | None = None,
    deployment_id: UUID | None = None,
) -> Selection:
    """Turn the config's names into ids and fix the cutoff; unknown names are errors.

    ``deployment_id`` is the cleanup's own deployment, whose protected tags apply
    whatever config the run was given (see ``deployment_protection``).
    """
    cutoff = (at or now("UTC")) - timedelta(days=config.retention_days)
    scope = await resolve_scope(client, config.flows, config.deployments, config.work_pools)
    labels = {
        key: list(values)
        for key, values in (
            ("flows", config.flows),
            ("deployments", config.deployments),
            ("work_pools", config.work_pools),
            ("tags", config.tags),
        )
        if values
    }
    return Selection(
        cutoff=cutoff,
        states=tuple(state.value for state in config.states),
        protected_tags=tuple(
            dict.fromkeys(
                [*config.protected_tags, *await deployment_protection(client, deployment_id)]
            )
        ),
        tags=tuple(config.tags) or None,
        limit=config.max_runs,
        labels=labels,
        **scope,
    )


async def resolve_scope(
    client: PrefectClient,
    flows: list[str],
    deployments: list[str],
    work_pools: list[str],
    where: str = "",
) -> dict[str, Any]:
    """Flow, deployment and work-queue ids for names; ``None`` where no name is given.

    ``where`` says which part of the config named them (``rules[0].match``), for
    the error an unknown name gives.
    """
    scope: dict[str, Any] = {"flow_ids": None, "deployment_ids": None, "work_queue_ids": None}
    if flows:
        found_flows = await client.read_flows(
            flow_filter=FlowFilter(name=FlowFilterName(any_=flows))
        )
        found = {flow.name: flow.id for flow in found_flows}
        await _require(client, "flow", flows, found, where)
        scope["flow_ids"] = tuple(found[name] for name in flows)
    if deployments:
        scope["deployment_ids"] = tuple(await _deployment_ids(client, deployments, where))
    if work_pools:
        pools = await client.read_work_pools(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=work_pools))
        )
        await _require(
            client, "work pool", work_pools, {pool.name: pool.id for pool in pools}, where
        )
        queues: list[UUID] = []
        for pool in work_pools:
            queues.extend(queue.id for queue in await client.read_work_queues(work_pool_name=pool))
        scope["work_queue_ids"] = tuple(queues)
    return scope


async def deployment_protection(client: PrefectClient, deployment_id: UUID | None) -> list[str]:
    """The protected tags set on the cleanup's deployment (``parameters.config``).

    Prefect merges a run's parameters with the deployment's by name only, and the
    cleanup takes one parameter, ``config``: an automation passing its own config
    replaces the deployment's whole. Protection may only grow, so the
    deployment's protected tags are added to whatever the run was given.
    """
    if deployment_id is None:
        return []
    try:
        deployment = await client.read_deployment(deployment_id)
    except ObjectNotFound:
        return []
    own = (deployment.parameters or {}).get("config")
    tags = own.get("protected_tags") if isinstance(own, dict) else None
    if not isinstance(tags, list):
        return []
    return RetentionConfig.model_validate({"protected_tags": tags}).protected_tags


async def _deployment_ids(client: PrefectClient, names: list[str], where: str) -> list[UUID]:
    wanted = [name.split("/", 1) for name in names]
    deployments = await client.read_deployments(
        deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=sorted({deployment for _, deployment in wanted}))
        ),
        flow_filter=FlowFilter(name=FlowFilterName(any_=sorted({flow for flow, _ in wanted}))),
    )
    flows = (
        {
            flow.id: flow.name
            for flow in await client.read_flows(
                flow_filter=FlowFilter(id={"any_": list({d.flow_id for d in deployments})})
            )
        }
        if deployments
        else {}
    )
    found = {f"{flows.get(d.flow_id)}/{d.name}": d.id for d in deployments}
    await _require(client, "deployment", names, found, where)
    return [found[name] for name in names]


async def _require(
    client: PrefectClient, kind: str, names: list[str], found: dict[str, UUID], where: str = ""
) -> None:
    missing = [name for name in names if name not in found]
    if not missing:
        return
    known = await _known_names(client, kind)
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, known, n=3)
        hints.append(
            f"{name!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
        )
    raise ScopeError(
        f"the cleanup's config names {kind}s the server does not have: {', '.join(hints)}",
        f"fix the '{where + '.' if where else ''}{kind.replace(' ', '_')}s' parameter of the "
        "cleanup (names are case-sensitive)",
    )


async def _known_names(client: PrefectClient, kind: str) -> list[str]:
    if kind == "flow":
        return [flow.name for flow in await client.read_flows(limit=200)]
    if kind == "work pool":
        return [pool.name for pool in await client.read_work_pools(limit=200)]
    deployments = await client.read_deployments(limit=200)
    flows = {flow.id: flow.name for flow in await client.read_flows(limit=200)}
    return [f"{flows.get(d.flow_id, '?')}/{d.name}" for d in deployments]
