"""Every catalog metric equals a direct query of the same database (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import PrefectClient
from prefect.server.database import orm_models

from flows.database import Database
from flows.devstack.server import LocalServer
from flows.errors import MetricUnavailable
from flows.history.seed import RunSpec, database_engine, make_history, table
from flows.probe.measures import MEASURES, Source
from helpers.cleanup import against
from triggers.metrics import CATALOG

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)
FINISHED = ("COMPLETED", "FAILED", "CRASHED")


async def measure(source: Source, name: str, query: dict[str, Any], window: timedelta) -> Any:
    metric = CATALOG[name]
    return await MEASURES[name](source, metric.query_model.model_validate(query), window)


async def seed(server: LocalServer, flow: str) -> list[uuid.UUID]:
    specs = [
        *[RunSpec(flow, "Completed", ago=40 * DAY, tags=["keep"], task_runs=2) for _ in range(4)],
        *[RunSpec(flow, "Failed", ago=35 * DAY, task_runs=1) for _ in range(3)],
        *[RunSpec(flow, "Crashed", ago=2 * DAY) for _ in range(2)],
        *[RunSpec(flow, "Completed", ago=DAY, task_runs=1, logs=2) for _ in range(3)],
        RunSpec(flow, "Cancelled", ago=3 * DAY),
        RunSpec(flow, "Running", ago=DAY / 2),
    ]
    ids = await make_history(server.api_url, server.database_url, specs)
    # Known lateness and run times for the runs of the last week (Prefect's SQLite
    # queries work in whole seconds, so the amounts are whole seconds too).
    engine = database_engine(server.database_url)
    runs = table(orm_models.FlowRun)
    late = (60, 120, 300, 30, 0, 45, 10)
    run_time = (30, 90, 600, 15, 5, 0, 0)
    try:
        async with engine.begin() as conn:
            for run_id, seconds, took in zip(ids[7:], late, run_time, strict=True):
                row = (await conn.execute(sa.select(runs).where(runs.c.id == run_id))).one()
                await conn.execute(
                    sa.update(runs)
                    .where(runs.c.id == run_id)
                    .values(
                        start_time=row.expected_start_time + timedelta(seconds=seconds),
                        total_run_time=timedelta(seconds=took),
                    )
                )
    finally:
        await engine.dispose()
    return ids


async def direct(server: LocalServer, flow: str, now: datetime) -> dict[str, Any]:
    """The same numbers, straight from the database with Prefect's own table definitions."""
    engine = database_engine(server.database_url)
    runs, flows, tasks = (
        table(m) for m in (orm_models.FlowRun, orm_models.Flow, orm_models.TaskRun)
    )
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(runs)
                    .join(flows, flows.c.id == runs.c.flow_id)
                    .where(flows.c.name == flow)
                )
            ).all()
            ids = [row.id for row in rows]
            old_tasks = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(tasks)
                .where(
                    tasks.c.flow_run_id.in_(ids),
                    tasks.c.state_type == "COMPLETED",
                    tasks.c.end_time < now - 30 * DAY,
                )
            )
            counts = {
                name: await conn.scalar(sa.select(sa.func.count()).select_from(table(model)))
                for name, model in (
                    ("flow_run", orm_models.FlowRun),
                    ("task_run", orm_models.TaskRun),
                )
            }
    finally:
        await engine.dispose()

    def state(row: Any) -> str:
        return str(getattr(row.state_type, "value", row.state_type))

    def aware(value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def late(row: Any) -> float:
        if row.start_time is None:
            return 0.0
        return max(0.0, (aware(row.start_time) - aware(row.expected_start_time)).total_seconds())

    def ended_before(row: Any, moment: datetime) -> bool:
        return row.end_time is not None and aware(row.end_time) < moment

    week = [row for row in rows if aware(row.expected_start_time) >= now - 7 * DAY]
    finished = [row for row in week if state(row) in FINISHED]
    lateness = [late(row) for row in week]
    old = [row for row in rows if ended_before(row, now - 30 * DAY)]
    return {
        "old finished": len([row for row in old if state(row) in ("COMPLETED", "FAILED")]),
        "tagged keep": sum(1 for row in rows if "keep" in row.tags),
        "old completed tasks": old_tasks,
        "lateness": sum(lateness) / len(lateness),
        "duration": sum(row.total_run_time.total_seconds() for row in finished) / len(finished),
        "success rate": 100.0
        * len([row for row in finished if state(row) == "COMPLETED"])
        / len(finished),
        **counts,
    }


async def test_every_metric_equals_a_direct_query(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = f"metrics-{uuid.uuid4().hex[:8]}"
    ids = await seed(server, flow)
    async with against(server, "database", monkeypatch):
        database, why = await Database.find(ids[0])
        assert database is not None, why
        if database.dialect == "postgresql":
            await _analyze(server)
        async with PrefectClient(server.api_url) as client:
            now = datetime.now(UTC)
            source = Source(client=client, now=now, database=database)
            week = 7 * DAY
            measured = {
                "old finished": await measure(
                    source,
                    "flow_runs.count",
                    {"flows": [flow], "states": ["COMPLETED", "FAILED"], "older_than": "30d"},
                    week,
                ),
                "tagged keep": await measure(
                    source, "flow_runs.count", {"flows": [flow], "tags": ["keep"]}, week
                ),
                "old completed tasks": await measure(
                    source,
                    "task_runs.count",
                    {"flows": [flow], "states": ["COMPLETED"], "older_than": "30d"},
                    week,
                ),
                "lateness": await measure(source, "flow_runs.lateness", {"flows": [flow]}, week),
                "duration": await measure(source, "flow_runs.duration", {"flows": [flow]}, week),
                "success rate": await measure(
                    source, "flow_runs.success_rate", {"flows": [flow]}, week
                ),
                "flow_run": await measure(
                    source, "database.table_rows", {"table": "flow_run"}, week
                ),
                "task_run": await measure(
                    source, "database.table_rows", {"table": "task_run"}, week
                ),
            }
            expected = await direct(server, flow, now)
            assert measured == pytest.approx(expected, abs=0.01)
            assert measured["old finished"] == 7, "4 Completed (40 days) + 3 Failed (35 days)"
            assert measured["old completed tasks"] == 8

            before = await _size(server, database)
            size = await measure(source, "database.size_bytes", {}, week)
            after = await _size(server, database)
            assert min(before, after) <= size <= max(before, after)


async def _analyze(server: LocalServer) -> None:
    """Small tables: ANALYZE reads every row, so the planner's estimate is the count."""
    engine = database_engine(server.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE flow_run"))
            await conn.execute(sa.text("ANALYZE task_run"))
    finally:
        await engine.dispose()


async def _size(server: LocalServer, database: Database) -> int:
    if database.dialect == "postgresql":
        return int(await database.scalar("SELECT pg_database_size(current_database())"))
    path = server.database_url.split(":///", 1)[1]
    wal = f"{path}-wal"
    return os.path.getsize(path) + (os.path.getsize(wal) if os.path.exists(wal) else 0)


async def test_windows_without_runs_have_no_data(server: LocalServer) -> None:
    async with PrefectClient(server.api_url) as client:
        idle = f"idle-{uuid.uuid4().hex[:6]}"
        await client.create_flow_from_name(idle)  # known to the server, never ran
        source = Source(client=client, now=datetime.now(UTC))
        for name in ("flow_runs.lateness", "flow_runs.duration", "flow_runs.success_rate"):
            assert await measure(source, name, {"flows": [idle]}, DAY) is None, name
        assert await measure(source, "flow_runs.count", {"flows": [idle]}, DAY) == 0


async def test_a_query_naming_an_unknown_flow_or_deployment_is_unavailable_with_the_closest_names(
    server: LocalServer,
) -> None:
    flow = f"nightly-etl-{uuid.uuid4().hex[:6]}"
    async with PrefectClient(server.api_url) as client:
        flow_id = await client.create_flow_from_name(flow)
        await client.create_deployment(flow_id=flow_id, name="prod")
        source = Source(client=client, now=datetime.now(UTC))
        with pytest.raises(MetricUnavailable) as caught:
            await measure(source, "flow_runs.count", {"flows": [flow + "x"]}, DAY)
        assert f"names flows the server does not have: '{flow}x'" in str(caught.value)
        # The closest name first; other tests' flows on this server may follow it.
        assert f"did you mean '{flow}'" in str(caught.value)
        assert "fix query.flows" in str(caught.value)
        with pytest.raises(MetricUnavailable) as caught:
            await measure(source, "flow_runs.lateness", {"deployments": [f"{flow}/prd"]}, DAY)
        assert f"'{flow}/prd' (did you mean '{flow}/prod'" in str(caught.value)


async def test_database_metrics_without_the_database_are_unavailable_with_the_fix(
    server: LocalServer,
) -> None:
    async with PrefectClient(server.api_url) as client:
        source = Source(client=client, now=datetime.now(UTC))
        for name, query in (("database.size_bytes", {}), ("database.table_rows", {"table": "log"})):
            with pytest.raises(MetricUnavailable) as caught:
                await measure(source, name, query, DAY)
            assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" in str(caught.value)


async def test_the_bundles_own_runs_are_left_out_of_the_averages_unless_named(
    server: LocalServer,
) -> None:
    tag = f"mix-{uuid.uuid4().hex[:8]}"
    hour = timedelta(hours=1)
    specs = [RunSpec("metric-probe", "Failed", ago=hour, tags=[tag]) for _ in range(4)]
    specs += [RunSpec(f"work-{tag}", "Completed", ago=hour, tags=[tag]) for _ in range(2)]
    await make_history(server.api_url, server.database_url, specs)
    async with PrefectClient(server.api_url) as client:
        source = Source(client=client, now=datetime.now(UTC))
        workloads = await measure(source, "flow_runs.success_rate", {"tags": [tag]}, DAY)
        named = {"tags": [tag], "flows": ["metric-probe"]}
        probe_only = await measure(source, "flow_runs.success_rate", named, DAY)
    assert workloads == 100.0, "the probe's own (here failed) runs do not count"
    assert probe_only == 0.0, "named in flows, they do"


async def test_retention_metrics_equal_the_tables_own_figures(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Table bytes, the oldest row's age and the rows past a retention, on events written
    at known times: what the retention-stalled automation watches."""
    from helpers.retention import event, insert

    kind = f"janitor.test.{uuid.uuid4().hex[:8]}"
    # Younger than the server's own event retention (7 days), which its vacuum enforces.
    rows = [event(kind, "res", DAY * 6), *(event(kind, "res", DAY * 5.5) for _ in range(3))]
    await insert(server.database_url, orm_models.Event, [row for row, _ in rows])
    (anchor,) = await make_history(server.api_url, server.database_url, [RunSpec("anchor")])
    async with against(server, "database", monkeypatch):
        database, why = await Database.find(anchor)
        assert database is not None, why
        async with PrefectClient(server.api_url) as client:
            source = Source(client=client, now=datetime.now(UTC), database=database)
            age = await measure(source, "database.oldest_row_age", {"table": "events"}, DAY)
            older = await measure(
                source, "database.rows_older_than", {"table": "events", "older_than": "5d"}, DAY
            )
            size = await measure(source, "database.table_bytes", {"table": "events"}, DAY)

    events = table(orm_models.Event)
    engine = database_engine(server.database_url)
    try:
        async with engine.connect() as conn:
            oldest = await conn.scalar(sa.select(sa.func.min(events.c.occurred)))
            past = await conn.scalar(
                sa.select(sa.func.count()).where(events.c.occurred < datetime.now(UTC) - 5 * DAY)
            )
    finally:
        await engine.dispose()
    assert age == pytest.approx((source.now - oldest).total_seconds(), abs=5)
    assert age >= (6 * DAY).total_seconds() - 5
    assert older == past
    assert older >= 4
    assert size > 0
    with pytest.raises(MetricUnavailable, match=r"needs query\.older_than"):
        await measure(source, "database.rows_older_than", {"table": "events"}, DAY)
