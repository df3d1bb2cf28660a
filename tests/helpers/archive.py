"""What the archive tests share: realistic history with every kind of row, and a
snapshot of every column of every row that belongs to some flow runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from prefect.server.database import orm_models

from flows.history.seed import RunSpec, database_engine, make_history, table
from helpers.retention import artifact, collection, event, insert

DAY = timedelta(days=1)


async def rich_history(database_url: str, api_url: str, flow_name: str) -> dict[str, Any]:
    """Old runs with task runs, states, logs, artifacts (and their collection), a run
    input; old events with resources; a recent run that stays. The ids, by kind."""
    old = await make_history(
        api_url,
        database_url,
        [
            RunSpec(flow_name, state, ago=DAY * (40 + i), task_runs=3, logs=4)
            for i, state in enumerate(["Completed", "Failed", "Completed", "Cancelled"])
        ],
    )
    (recent,) = await make_history(api_url, database_url, [RunSpec(flow_name, ago=DAY)])
    key = f"report-{uuid.uuid4().hex[:8]}"
    artifacts = [artifact(key, old[0], DAY * 41), artifact(key, old[1], DAY * 40)]
    await insert(database_url, orm_models.Artifact, artifacts)
    await insert(database_url, orm_models.ArtifactCollection, [collection(artifacts[-1])])
    now = datetime.now(UTC)
    await insert(
        database_url,
        orm_models.FlowRunInput,
        [
            {
                "id": uuid.uuid4(),
                "created": now,
                "updated": now,
                "flow_run_id": old[2],
                "key": "approval",
                "value": '{"approve": true}',
                "sender": "janitor",
            }
        ],
    )
    kind = f"janitor.test.{uuid.uuid4().hex[:8]}"
    events, resources = [], []
    for i in range(5):
        row, rows = event(kind, f"janitor.test.resource.{i}", DAY * 30, resources=3)
        events.append(row)
        resources.extend(rows)
    await insert(database_url, orm_models.Event, events)
    await insert(database_url, orm_models.EventResource, resources)
    return {
        "old": old,
        "recent": recent,
        "key": key,
        "event_type": kind,
        "events": [row["id"] for row in events],
    }


def _queries(ids: Sequence[UUID], event_ids: Sequence[UUID]) -> dict[str, Any]:
    runs, states = table(orm_models.FlowRun), table(orm_models.FlowRunState)
    tasks, task_states = table(orm_models.TaskRun), table(orm_models.TaskRunState)
    inputs, logs = table(orm_models.FlowRunInput), table(orm_models.Log)
    artifacts = table(orm_models.Artifact)
    events, resources = table(orm_models.Event), table(orm_models.EventResource)
    task_ids = sa.select(tasks.c.id).where(tasks.c.flow_run_id.in_(ids))
    return {
        "flow_run": sa.select(runs).where(runs.c.id.in_(ids)),
        "flow_run_state": sa.select(states).where(states.c.flow_run_id.in_(ids)),
        "task_run": sa.select(tasks).where(tasks.c.flow_run_id.in_(ids)),
        "task_run_state": sa.select(task_states).where(task_states.c.task_run_id.in_(task_ids)),
        "flow_run_input": sa.select(inputs).where(inputs.c.flow_run_id.in_(ids)),
        "log": sa.select(logs).where(logs.c.flow_run_id.in_(ids)),
        "artifact": sa.select(artifacts).where(artifacts.c.flow_run_id.in_(ids)),
        "events": sa.select(events).where(events.c.id.in_(event_ids)),
        "event_resources": sa.select(resources).where(resources.c.event_id.in_(event_ids)),
    }


async def snapshot(
    database_url: str, ids: Sequence[UUID], event_ids: Sequence[UUID] = ()
) -> dict[str, list[dict[str, Any]]]:
    """Every column of every row of these runs (and events), per table, sorted by id."""
    engine = database_engine(database_url)
    try:
        async with engine.connect() as conn:
            found: dict[str, list[dict[str, Any]]] = {}
            for name, query in _queries(ids, event_ids).items():
                rows = [dict(row) for row in (await conn.execute(query)).mappings()]
                found[name] = sorted(rows, key=lambda row: str(row["id"]))
            return found
    finally:
        await engine.dispose()


def counts(snap: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {name: len(rows) for name, rows in snap.items() if rows}
