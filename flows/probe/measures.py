"""How the probe measures each metric of the catalog (``triggers.metrics``).

One function per metric, registered in ``MEASURES`` by the catalog's name;
a test holds the two in step. Counting and averaging go through the
server's own endpoints (the count, lateness and history endpoints the UI's
dashboard uses), one request each whatever the number of runs: the database
does the arithmetic. The database metrics read the server's database itself.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.exceptions import ObjectNotFound

from flows.errors import MetricUnavailable
from triggers import api
from triggers.hints import did_you_mean
from triggers.metrics.queries import AGE_COLUMNS, AgeQuery, RunCountQuery, RunScope, TableQuery

FINISHED = ("COMPLETED", "FAILED", "CRASHED")
"""Runs that ran to an end by themselves; cancelled runs say nothing about health."""

OWN_FLOWS = ("metric-probe", "database-cleanup")
"""The bundle's own flows: a probe every minute is 1,440 quick, successful runs a
day, which would otherwise swamp the averages of the workloads being watched.
Left out of the windowed metrics unless a query names them in ``flows``."""


class DatabaseAccess(Protocol):
    """The server's own database, proven to be the one the API serves."""

    dialect: str

    @property
    def connection_url(self) -> str: ...

    async def scalar(self, sql: str, **params: Any) -> Any: ...


@dataclass
class Source:
    """Where measurements come from: the API always, the database when reachable."""

    client: PrefectClient
    now: datetime
    database: DatabaseAccess | None = None
    database_problem: str = "the probe has no access to the server's database"

    def require_database(self) -> DatabaseAccess:
        if self.database is None:
            raise MetricUnavailable(
                self.database_problem,
                "run the probe where PREFECT_SERVER_DATABASE_CONNECTION_URL is the "
                "server's database URL (the local stack does this)",
            )
        return self.database


Measure = Callable[[Source, Any, timedelta], Awaitable[float | None]]
"""A metric's measurement: the value in its unit, ``None`` when there is no data (no
runs in the window); raises ``MetricUnavailable`` when it cannot be had at all."""


# --- the server's database -------------------------------------------------------


async def database_size(source: Source, query: Any, window: timedelta) -> float:
    database = source.require_database()
    if database.dialect == "sqlite":
        return float(sqlite_size(database.connection_url))
    return float(await database.scalar("SELECT pg_database_size(current_database())"))


def sqlite_size(connection_url: str) -> int:
    """The SQLite file plus its write-ahead log, in bytes."""
    from sqlalchemy.engine import make_url

    path = make_url(connection_url).database
    if not path or path == ":memory:":
        raise MetricUnavailable("the server's SQLite database is in memory; it has no size")
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise MetricUnavailable(f"cannot stat the SQLite file: {exc.strerror}") from exc
    # No write-ahead log right now: checkpointed, or not in WAL mode.
    with suppress(FileNotFoundError):
        size += os.stat(f"{path}-wal").st_size
    return size


async def table_rows(source: Source, query: TableQuery, window: timedelta) -> float:
    database = source.require_database()
    table = query.table  # validated against Prefect's own table names
    if database.dialect == "postgresql":
        estimate = await database.scalar(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:name)",
            name=table,
        )
        if estimate is not None and estimate >= 0:
            return float(estimate)
        # -1: never analyzed yet (a young database); small enough to count.
    return float(await database.scalar(f'SELECT count(*) FROM "{table}"'))


async def table_bytes(source: Source, query: TableQuery, window: timedelta) -> float:
    database = source.require_database()
    table = query.table  # validated against Prefect's own table names
    if database.dialect == "postgresql":
        size = await database.scalar(
            "SELECT pg_total_relation_size(to_regclass(:name))", name=table
        )
    else:
        size = await database.scalar(
            "SELECT coalesce(sum(s.pgsize), 0) FROM dbstat s "
            "JOIN sqlite_master m ON m.name = s.name WHERE m.tbl_name = :name",
            name=table,
        )
    if size is None:
        raise MetricUnavailable(f"the server's database has no table {table!r}")
    return float(size)


def _aged(query: AgeQuery) -> tuple[str, str]:
    """The table and its time column, both from fixed lists (never from the YAML as such);
    runs count only once they are finished, as the cleanup sees them."""
    column = AGE_COLUMNS[query.table]
    where = f'"{column}" IS NOT NULL'
    if query.table in ("flow_run", "task_run"):
        where += " AND state_type IN ('COMPLETED', 'FAILED', 'CANCELLED', 'CRASHED')"
    return f'"{query.table}"', where


async def oldest_row_age(source: Source, query: AgeQuery, window: timedelta) -> float | None:
    database = source.require_database()
    table, where = _aged(query)
    column = AGE_COLUMNS[query.table]
    oldest = await database.scalar(f'SELECT min("{column}") FROM {table} WHERE {where}')
    if oldest is None:
        return None  # an empty table: nothing is overdue
    if isinstance(oldest, str):  # SQLite hands timestamps back as text
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (source.now - oldest).total_seconds())


async def rows_older_than(source: Source, query: AgeQuery, window: timedelta) -> float:
    database = source.require_database()
    if query.older_than is None:
        raise MetricUnavailable(
            "database.rows_older_than needs query.older_than",
            "add older_than (for example 7d) to the trigger's query and run python scripts/sync.py",
        )
    table, where = _aged(query)
    column = AGE_COLUMNS[query.table]
    before = source.now - query.older_than
    if database.dialect != "postgresql":
        before_value: Any = before.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    else:
        before_value = before
    count = await database.scalar(
        f'SELECT count(*) FROM {table} WHERE {where} AND "{column}" < :before',
        before=before_value,
    )
    return float(count or 0)


# --- counts through the API --------------------------------------------------------


T = TypeVar("T")


async def _answer(call: Awaitable[T]) -> T:
    """The server's answer, or ``MetricUnavailable`` saying which request failed and how."""
    try:
        return await call
    except httpx.HTTPStatusError as exc:
        request = exc.request
        raise MetricUnavailable(
            f"{request.method} {request.url.path} answered {exc.response.status_code}: "
            f"{exc.response.text[:200]}"
        ) from exc
    except httpx.HTTPError as exc:
        raise MetricUnavailable(
            f"the Prefect API failed: {type(exc).__name__}: {exc}",
            "check the server's health; the next probe run measures again",
        ) from exc


async def _scope_filters(source: Source, scope: RunScope) -> dict[str, Any]:
    """The filter body for ``scope``; a flow or deployment the server lacks is
    ``MetricUnavailable`` naming the closest names, never a silent zero."""
    body: dict[str, Any] = {}
    if scope.flows:
        found = await _answer(
            source.client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=scope.flows)))
        )
        await _require(source, "flows", scope.flows, {flow.name for flow in found})
        body["flows"] = {"name": {"any_": scope.flows}}
    if scope.deployments:
        ids, missing = [], []
        for name in scope.deployments:
            try:
                deployment = await _answer(source.client.read_deployment_by_name(name))
            except ObjectNotFound:
                missing.append(name)
                continue
            ids.append(str(deployment.id))
        await _require(
            source, "deployments", scope.deployments, set(scope.deployments) - set(missing)
        )
        body["deployments"] = {"id": {"any_": ids}}
    return body


async def _require(source: Source, kind: str, names: list[str], found: set[str]) -> None:
    missing = [name for name in names if name not in found]
    if not missing:
        return
    if kind == "flows":
        known = [flow.name for flow in await _answer(source.client.read_flows(limit=200))]
    else:
        deployments = await _answer(source.client.read_deployments(limit=200))
        flows = {flow.id: flow.name for flow in await _answer(source.client.read_flows(limit=200))}
        known = [f"{flows.get(d.flow_id, '?')}/{d.name}" for d in deployments]
    named = ", ".join(
        repr(name) + (f" ({hint})" if (hint := did_you_mean(name, known)) else "")
        for name in missing
    )
    raise MetricUnavailable(
        f"the query names {kind} the server does not have: {named}",
        f"fix query.{kind} of the metric trigger and run python scripts/sync.py "
        "(names are case-sensitive)",
    )


def _run_filter(source: Source, query: RunCountQuery) -> dict[str, Any]:
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


def _run_count(runs: Literal["flow_runs", "task_runs"]) -> Measure:
    """``runs`` is ``flow_runs`` or ``task_runs``: the count endpoint and the filter."""

    async def measure(source: Source, query: RunCountQuery, window: timedelta) -> float:
        body = await _scope_filters(source, query)
        body[runs] = _run_filter(source, query)
        return float(await _answer(api.count_runs(source.client, runs, body)))

    return measure


# --- windowed: lateness, duration, success rate -------------------------------------


async def _windowed_scope(source: Source, scope: RunScope) -> dict[str, Any]:
    """``_scope_filters`` without the bundle's own flows."""
    body = await _scope_filters(source, scope)
    own = [name for name in OWN_FLOWS if name not in scope.flows]
    if not own:
        return body
    flows = await _answer(
        source.client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=own)))
    )
    if flows:
        body.setdefault("flows", {})["id"] = {"not_any_": [str(flow.id) for flow in flows]}
    return body


@dataclass
class _Finished:
    """Flow runs of the window that finished: how many, how many Completed, their run time."""

    count: int = 0
    completed: int = 0
    run_time: float = 0.0


async def _finished(source: Source, scope: RunScope, window: timedelta) -> _Finished | None:
    """From the run history over the whole window; ``None`` when no run finished in it."""
    body = await _windowed_scope(source, scope)
    tags = {"tags": {"all_": scope.tags}} if scope.tags else {}
    body |= {
        "history_start": (source.now - window).isoformat(),
        "history_end": source.now.isoformat(),
        "history_interval_seconds": window.total_seconds(),
        "flow_runs": tags,
    }
    found = _Finished()
    for interval in await _answer(api.flow_run_history(source.client, body)):
        for state in interval["states"]:
            if state["state_type"] in FINISHED:
                found.count += state["count_runs"]
                found.run_time += state["sum_estimated_run_time"]
            if state["state_type"] == "COMPLETED":
                found.completed += state["count_runs"]
    return found if found.count else None


async def lateness(source: Source, query: RunScope, window: timedelta) -> float | None:
    body = await _windowed_scope(source, query)
    window_filter: dict[str, Any] = {
        "expected_start_time": {
            "after_": (source.now - window).isoformat(),
            "before_": source.now.isoformat(),
        }
    }
    if query.tags:
        window_filter["tags"] = {"all_": query.tags}
    body["flow_runs"] = window_filter
    value = await _answer(api.flow_run_lateness(source.client, body))
    return None if value is None else max(0.0, value)


async def duration(source: Source, query: RunScope, window: timedelta) -> float | None:
    finished = await _finished(source, query, window)
    return None if finished is None else finished.run_time / finished.count


async def success_rate(source: Source, query: RunScope, window: timedelta) -> float | None:
    finished = await _finished(source, query, window)
    return None if finished is None else 100.0 * finished.completed / finished.count


MEASURES: dict[str, Measure] = {
    "database.size_bytes": database_size,
    "database.table_rows": table_rows,
    "database.table_bytes": table_bytes,
    "database.oldest_row_age": oldest_row_age,
    "database.rows_older_than": rows_older_than,
    "flow_runs.count": _run_count("flow_runs"),
    "task_runs.count": _run_count("task_runs"),
    "flow_runs.lateness": lateness,
    "flow_runs.duration": duration,
    "flow_runs.success_rate": success_rate,
}
"""Every metric of ``triggers.metrics.CATALOG``, by name."""
