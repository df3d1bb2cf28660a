"""History seeding against real servers: what it writes must read back right through the API."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
import sqlalchemy as sa
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.server import models
from prefect.server.database import orm_models
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

import flows.history.bulk
from flows.devstack.server import LocalServer
from flows.history.bulk import _statements, bulk_seed
from flows.history.rows import TABLES, RowMaker
from flows.history.seed import STATE_NAMES, RunSpec, database_engine, make_history, table

TERMINAL = {"Completed", "Failed", "Cancelled", "Crashed"}
SLACK = timedelta(minutes=2)


def near(when: datetime, expected: datetime) -> bool:
    return abs(expected - when) < SLACK


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def read_all_logs(client: PrefectClient, run_ids: list[uuid.UUID]) -> list[Any]:
    found: list[Any] = []
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids))
    while page := await client.read_logs(log_filter=log_filter, limit=200, offset=len(found)):
        found.extend(page)
    return found


async def read_all_runs(client: PrefectClient, flow_name: str) -> list[Any]:
    """The API gives at most 200 at a time."""
    found: list[Any] = []
    flows_named = FlowFilter(name=FlowFilterName(any_=[flow_name]))
    while page := await client.read_flow_runs(
        flow_filter=flows_named, sort=FlowRunSort.END_TIME_DESC, limit=200, offset=len(found)
    ):
        found.extend(page)
    return found


async def count_task_runs(client: PrefectClient, flow_name: str) -> int:
    response = await client.request(
        "POST", "/task_runs/count", json={"flows": {"name": {"any_": [flow_name]}}}
    )
    return int(response.json())


@pytest.mark.anyio
async def test_make_history_ages_runs_in_every_state(server: LocalServer) -> None:
    flow_name = unique("history")
    specs = [
        RunSpec(
            flow_name,
            state,
            ago=timedelta(days=40) if state in TERMINAL else timedelta(days=90),
            tags=["seeded", state.lower()],
            task_runs=2,
            logs=3,
        )
        for state in STATE_NAMES
    ]
    ids = await make_history(server.api_url, server.database_url, specs)
    now = datetime.now(UTC)

    async with PrefectClient(server.api_url) as client:
        for spec, run_id in zip(specs, ids, strict=True):
            run = await client.read_flow_run(run_id)
            assert spec.ago is not None
            assert run.state is not None
            assert run.state.name == spec.state
            assert run.tags == ["seeded", spec.state.lower()]
            expected_type = "SCHEDULED" if spec.state == "Late" else spec.state.upper()
            assert run.state.type == StateType(expected_type)
            if spec.state in TERMINAL:
                assert run.end_time is not None
                assert run.start_time is not None
                assert near(run.end_time, now - spec.ago)
                assert run.start_time <= run.end_time
            else:
                assert run.end_time is None
                assert near(run.state.timestamp, now - spec.ago)
            assert run.created is not None
            assert run.created < now - spec.ago + SLACK
            if spec.state == "Scheduled":
                # A plan stays in the future, or the late-runs service would act on it.
                assert run.expected_start_time is not None
                assert run.expected_start_time > now
            history = await client.read_flow_run_states(run_id)
            assert history[-1].name == spec.state
            assert all(s.timestamp < now - spec.ago + SLACK for s in history)
            assert [s.timestamp for s in history] == sorted(s.timestamp for s in history)

            task_runs = await client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id]))
            )
            assert len(task_runs) == 2
            for task_run in task_runs:
                assert task_run.created is not None
                assert task_run.created < now - spec.ago + SLACK
            logs = await read_all_logs(client, [run_id])
            assert len(logs) == 3
            assert all(log.timestamp < now - spec.ago + SLACK for log in logs)


@pytest.mark.anyio
async def test_make_history_from_a_deployment_and_without_age(server: LocalServer) -> None:
    flow_name = unique("deployed")
    async with PrefectClient(server.api_url) as client:
        flow_id = await client.create_flow_from_name(flow_name)
        deployment_id = await client.create_deployment(flow_id=flow_id, name="nightly")
    specs = [
        RunSpec(flow_name, "Failed", task_runs=1),
        RunSpec(flow_name, "Completed", ago=timedelta(days=31), deployment_id=deployment_id),
    ]
    fresh_id, deployed_id = await make_history(server.api_url, server.database_url, specs)
    now = datetime.now(UTC)
    async with PrefectClient(server.api_url) as client:
        fresh = await client.read_flow_run(fresh_id)
        deployed = await client.read_flow_run(deployed_id)
    assert fresh.end_time is not None
    assert near(fresh.end_time, now)
    assert deployed.deployment_id == deployment_id
    assert deployed.flow_id == flow_id
    assert deployed.end_time is not None
    assert near(deployed.end_time, now - timedelta(days=31))


@pytest.mark.anyio
async def test_make_history_refuses_unknown_states(server: LocalServer) -> None:
    with pytest.raises(ValueError, match="unknown state"):
        await make_history(server.api_url, server.database_url, [RunSpec("x", "Done")])


@pytest.mark.anyio
async def test_bulk_seed_reads_back_through_the_api(server: LocalServer) -> None:
    flow_name = unique("bulk")
    seen: list[int] = []
    ended_ago, spread = timedelta(days=60), timedelta(days=3)
    seeded = await bulk_seed(
        server.api_url,
        server.database_url,
        300,
        flow_name=flow_name,
        ended_ago=ended_ago,
        spread=spread,
        chunk=100,
        progress=seen.append,
    )
    now = datetime.now(UTC)
    assert sorted(seen) == [100, 200, 300]
    assert (seeded.runs, seeded.task_runs, seeded.task_run_states, seeded.logs) == (
        300,
        900,
        2700,
        1500,
    )
    assert 900 <= seeded.flow_run_states <= 1200  # 3 or 4 states a run

    flows_named = FlowFilter(name=FlowFilterName(any_=[flow_name]))
    async with PrefectClient(server.api_url) as client:
        assert await client.count_flow_runs(flow_filter=flows_named) == 300
        assert await count_task_runs(client, flow_name) == 900
        runs = await read_all_runs(client, flow_name)
        assert len(runs) == 300
        outcomes = Counter(run.state.name for run in runs if run.state is not None)
        assert set(outcomes) <= TERMINAL
        assert outcomes["Completed"] > 150
        assert sum(run.deployment_id == seeded.deployment_id for run in runs) > 200
        for run in runs:
            assert run.state is not None
            assert run.state.is_final()
            assert run.state_id == run.state.id
            assert run.end_time is not None
            assert run.start_time is not None
            assert now - ended_ago - spread - SLACK < run.end_time < now - ended_ago + SLACK
            assert run.start_time < run.end_time

        sample = runs[0]
        history = await client.read_flow_run_states(sample.id)
        assert [s.name for s in history][-2:] == ["Running", sample.state_name]
        task_runs = await client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[sample.id]))
        )
        assert len(task_runs) == 3
        assert all(t.state is not None and t.state.is_final() for t in task_runs)
        assert sample.end_time is not None
        assert all(t.end_time is not None and t.end_time <= sample.end_time for t in task_runs)

        logs = await read_all_logs(client, [run.id for run in runs])
        assert len(logs) == 1500
        assert Counter(log.flow_run_id for log in logs) == dict.fromkeys(
            (run.id for run in runs), 5
        )


@pytest.mark.anyio
async def test_bulk_seeded_runs_delete_through_the_api(server: LocalServer) -> None:
    """POST /flow_runs/bulk_delete works on them; their logs go in the background."""
    flow_name = unique("bulk-delete")
    seeded = await bulk_seed(server.api_url, server.database_url, 60, flow_name=flow_name)
    flows_named = FlowFilter(name=FlowFilterName(any_=[flow_name]))
    async with PrefectClient(server.api_url) as client:
        runs = await client.read_flow_runs(
            flow_filter=flows_named, sort=FlowRunSort.END_TIME_DESC, limit=60
        )
        doomed = [run.id for run in runs[:50]]
        body = {"flow_runs": {"id": {"any_": [str(i) for i in doomed]}}, "limit": 50}
        async with httpx.AsyncClient(base_url=server.api_url, timeout=60) as http:
            response = await http.post("/flow_runs/bulk_delete", json=body)
        response.raise_for_status()
        assert len(response.json()["deleted"]) == 50
        assert await client.count_flow_runs(flow_filter=flows_named) == seeded.runs - 50
        assert await count_task_runs(client, flow_name) == (seeded.runs - 50) * 3
        for _ in range(40):
            if not await read_all_logs(client, doomed):
                break
            await asyncio.sleep(0.25)
        assert await read_all_logs(client, doomed) == []
        assert len(await read_all_logs(client, [run.id for run in runs[50:]])) == 50


# Prefect's db_injector decorator hides the signature from mypy.
delete_flow_runs = cast(
    Callable[..., Awaitable[list[uuid.UUID]]], models.flow_runs.delete_flow_runs
)


def foreign_keys_on(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


async def child_counts(database_url: str, run_ids: list[uuid.UUID]) -> dict[str, int]:
    flow_run, task_run = table(orm_models.FlowRun), table(orm_models.TaskRun)
    states, task_states = table(orm_models.FlowRunState), table(orm_models.TaskRunState)
    log = table(orm_models.Log)
    in_runs = task_states.c.task_run_id.in_(
        sa.select(task_run.c.id).where(task_run.c.flow_run_id.in_(run_ids))
    )
    queries = {
        "flow_run": sa.select(sa.func.count()).where(flow_run.c.id.in_(run_ids)),
        "flow_run_state": sa.select(sa.func.count()).where(states.c.flow_run_id.in_(run_ids)),
        "task_run": sa.select(sa.func.count()).where(task_run.c.flow_run_id.in_(run_ids)),
        "task_run_state": sa.select(sa.func.count()).where(in_runs),
        "log": sa.select(sa.func.count()).where(log.c.flow_run_id.in_(run_ids)),
    }
    engine = database_engine(database_url)
    try:
        async with engine.connect() as conn:
            return {name: int(await conn.scalar(query) or 0) for name, query in queries.items()}
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_prefect_delete_flow_runs_cascades_to_all_but_logs(server: LocalServer) -> None:
    """What a cleanup through Prefect's own models leaves behind, on seeded rows.

    Task runs and both kinds of states go by foreign-key cascade, which SQLite
    applies only on connections with PRAGMA foreign_keys=ON (Prefect's own
    engine sets it; a plain engine does not). Logs have no foreign key: they stay.
    """
    flow_name = unique("bulk-models")
    await bulk_seed(server.api_url, server.database_url, 40, flow_name=flow_name)
    async with PrefectClient(server.api_url) as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            sort=FlowRunSort.END_TIME_DESC,
            limit=40,
        )
    run_ids = [run.id for run in runs]
    before = await child_counts(server.database_url, run_ids)
    assert before["task_run_state"] == 40 * 9

    engine = database_engine(server.database_url)
    if server.database_url.startswith("sqlite"):
        sa.event.listen(engine.sync_engine, "connect", foreign_keys_on)
    try:
        async with AsyncSession(engine) as session, session.begin():
            deleted = await delete_flow_runs(session=session, flow_run_ids=run_ids)
    finally:
        await engine.dispose()
    assert sorted(deleted) == sorted(run_ids)
    after = await child_counts(server.database_url, run_ids)
    assert after == {
        "flow_run": 0,
        "flow_run_state": 0,
        "task_run": 0,
        "task_run_state": 0,
        "log": before["log"],
    }


@pytest.mark.anyio
async def test_bulk_seed_links_states_after_insert_without_superuser(
    postgres_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A role that may not switch off foreign-key checks still gets linked runs."""

    async def not_allowed(_conn: Any) -> bool:
        return False

    monkeypatch.setattr(flows.history.bulk, "_may_skip_foreign_keys", not_allowed)
    flow_name = unique("bulk-linked")
    await bulk_seed(postgres_server.api_url, postgres_server.database_url, 50, flow_name=flow_name)
    async with PrefectClient(postgres_server.api_url) as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            sort=FlowRunSort.END_TIME_DESC,
            limit=50,
        )
    assert len(runs) == 50
    assert all(run.state is not None and run.state_id == run.state.id for run in runs)
    assert all(run.state is not None and run.state.is_final() for run in runs)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), PGDialect_asyncpg()])
def test_bulk_rows_fit_prefects_tables(dialect: sa.Dialect) -> None:
    """Catches a Prefect upgrade that adds, drops or renames a column we fill."""
    statements = _statements(dialect)
    maker = RowMaker(
        uuid.uuid4(),
        uuid.uuid4(),
        "flow",
        3,
        5,
        sqlite=dialect.name == "sqlite",
        link_after_insert=True,
        seed=0,
        window=(datetime(2026, 1, 1), timedelta(seconds=1)),
    )
    rows = maker.chunk(0, 10)
    for name, model, columns in TABLES:
        assert set(columns) <= set(table(model).c.keys())
        assert all(len(row) == len(columns) for row in getattr(rows, name))
        assert name in statements
    assert len(rows.links) == 10
