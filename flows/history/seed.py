"""Realistic, old flow-run history for safety tests: made through the API, aged on the database.

The server stamps every state with its own clock and ignores the times a client
proposes, so a run that "ended 90 days ago" cannot be made through the API alone.
Runs, their task runs and logs are created through the API (so every row and
column is the server's own), then `backdate` moves their times back with plain
UPDATE statements on Prefect's tables. This is for a few hundred runs; for
benchmark volumes see `flows.history.bulk`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from prefect import Flow, Task, states
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import LogCreate
from prefect.server.database import orm_models
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

StateFactory = Callable[[], states.State[Any]]

#: How each state name is reached from Pending: the states proposed before the
#: run's task runs are made, and those proposed after them.
_PATHS: dict[str, tuple[tuple[StateFactory, ...], tuple[StateFactory, ...]]] = {
    "Completed": ((states.Running,), (states.Completed,)),
    "Failed": ((states.Running,), (lambda: states.Failed(message="ValueError: bad row"),)),
    "Crashed": ((states.Running,), (lambda: states.Crashed(message="Exited with code 137"),)),
    "Cancelled": ((states.Running,), (states.Cancelling, states.Cancelled)),
    # The server cancels a run left Cancelling for 300 s (seen at 298 s after it
    # was made, backdated or not): a test has five minutes to look at it.
    "Cancelling": ((states.Running,), (states.Cancelling,)),
    "Running": ((states.Running,), ()),
    # No timeout: the server's pause-expiration service would fail an old pause.
    "Paused": ((states.Running,), (states.Paused,)),
    "Pending": ((), ()),
    "Scheduled": ((), ()),
    "Late": ((), (states.Late,)),
}
STATE_NAMES: tuple[str, ...] = tuple(_PATHS)

#: The state a run's last task run ends in, by the flow run's state name.
_LAST_TASK: dict[str, StateFactory] = {
    "Failed": lambda: states.Failed(message="ValueError: bad row"),
    "Crashed": states.Crashed,
    "Cancelled": states.Cancelled,
    "Running": states.Running,
    "Paused": states.Running,
    "Cancelling": states.Running,
}

#: Columns holding times, per table Prefect created; `backdate` moves them all.
_RUN_TIMES = (
    "created",
    "updated",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "state_timestamp",
)
_STATE_TIMES = ("created", "updated", "timestamp")


@dataclass(frozen=True)
class RunSpec:
    """One flow run to make.

    `ago` is how long ago the run's last state change happened: its end_time
    for a terminal run, else the timestamp of its current state (a Running run
    with `ago=90 days` started 90 days ago). None leaves the server's times.
    """

    flow_name: str
    state: str = "Completed"
    ago: timedelta | None = None
    tags: Sequence[str] = ()
    deployment_id: UUID | None = None
    task_runs: int = 0
    logs: int = 0
    name: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    parent_task_run_id: UUID | None = None
    """Makes it a subflow run of the flow run that owns this task run."""


def database_engine(database_url: str, **options: Any) -> AsyncEngine:
    """An engine on the server's database that waits for the server's own writes.

    SQLite allows one writer: a busy timeout makes our writes queue behind the
    server's instead of failing with "database is locked".
    """
    if database_url.startswith("sqlite"):
        options.setdefault("connect_args", {"timeout": 60})
    return create_async_engine(database_url, **options)


def table(model: type[orm_models.Base]) -> sa.Table:
    """The Table behind one of Prefect's ORM models (typed as a FromClause)."""
    found = model.__table__
    assert isinstance(found, sa.Table)
    return found


@cache
def _flow(name: str) -> Flow[..., None]:
    return Flow(fn=_seeded_flow, name=name)


@cache
def _task() -> Task[..., None]:
    return Task(fn=_seeded_task, name="step")


def _seeded_flow() -> None:
    """Stands in for the flow whose runs are seeded; never called."""


def _seeded_task() -> None:
    """Stands in for the task whose runs are seeded; never called."""


async def make_run(client: PrefectClient, spec: RunSpec) -> UUID:
    """Create one flow run through the API and drive it into `spec.state`.

    Every state is proposed with force=True so the run lands where the test
    wants it whatever the orchestration rules say; the server still sets
    start_time, end_time, run counts and state timestamps as for a real run.
    Task runs are made while the run is Running, so their times nest inside it.
    """
    if spec.state not in _PATHS:
        raise ValueError(f"unknown state {spec.state!r}; expected one of {STATE_NAMES}")
    before, after = _PATHS[spec.state]
    now = datetime.now(UTC)
    initial: states.State[Any]
    if spec.state == "Scheduled":
        initial = states.Scheduled(scheduled_time=now + timedelta(hours=1))
    elif spec.state == "Late":
        initial = states.Scheduled(scheduled_time=now - timedelta(minutes=5))
    else:
        initial = states.Pending()
    if spec.deployment_id is not None:
        run = await client.create_flow_run_from_deployment(
            spec.deployment_id,
            state=initial,
            name=spec.name,
            tags=list(spec.tags),
            parameters=dict(spec.parameters),
        )
    else:
        run = await client.create_flow_run(
            _flow(spec.flow_name),
            name=spec.name,
            tags=list(spec.tags),
            state=initial,
            parameters=dict(spec.parameters),
            parent_task_run_id=spec.parent_task_run_id,
        )
    for make_state in before:
        await client.set_flow_run_state(run.id, make_state(), force=True)
    task_ids = [await _make_task_run(client, run.id, spec, i) for i in range(spec.task_runs)]
    if spec.logs:
        await client.create_logs(
            LogCreate(
                name="prefect.task_runs" if task_ids and i % 2 else "prefect.flow_runs",
                level=40 if spec.state in {"Failed", "Crashed"} and i == spec.logs - 1 else 20,
                message=f"seeded log line {i} of {spec.state} run",
                timestamp=datetime.now(UTC),
                flow_run_id=run.id,
                task_run_id=task_ids[i % len(task_ids)] if task_ids and i % 2 else None,
            )
            for i in range(spec.logs)
        )
    for make_state in after:
        await client.set_flow_run_state(run.id, make_state(), force=True)
    return run.id


async def _make_task_run(client: PrefectClient, flow_run_id: UUID, spec: RunSpec, i: int) -> UUID:
    """A task run of a run that started ends Completed, except the last, which
    follows its flow run (Failed, Crashed, ... or still Running)."""
    task_run = await client.create_task_run(
        _task(), flow_run_id, dynamic_key=str(i), name=f"step-{i}", state=states.Pending()
    )
    if not _PATHS[spec.state][0]:
        return task_run.id  # the flow run never started: its task runs wait
    await client.set_task_run_state(task_run.id, states.Running(), force=True)
    last = i == spec.task_runs - 1
    final = _LAST_TASK.get(spec.state, states.Completed) if last else states.Completed
    if final is not states.Running:
        await client.set_task_run_state(task_run.id, final(), force=True)
    return task_run.id


async def backdate(database_url: str, moves: Mapping[UUID, timedelta]) -> None:
    """Move flow runs, and everything they own, back in time on the database.

    For each run id, every time of the run (flow_run, its flow_run_state rows,
    task runs and their states, logs, flow_run_input rows) is shifted by the
    same amount, so that the run's end_time (or, if it has none, its current
    state's timestamp) lies that long before now. Intervals between times are
    kept, so durations and the state history still read right. Times in the
    future are plans, not history, and stay: a Scheduled run keeps its
    expected start, else the server's late-runs service would mark it Late.

    Works on SQLite and PostgreSQL through Prefect's own table definitions,
    so UUIDs, timestamps and enums are stored the way the server stores them.
    """
    if not moves:
        return
    engine = database_engine(database_url)
    try:
        async with engine.begin() as conn:
            ids = list(moves)
            for start in range(0, len(ids), 500):
                await _backdate_chunk(conn, {i: moves[i] for i in ids[start : start + 500]})
    finally:
        await engine.dispose()


async def _backdate_chunk(conn: AsyncConnection, moves: Mapping[UUID, timedelta]) -> None:
    now = datetime.now(UTC)
    flow_run = table(orm_models.FlowRun)
    anchors = await conn.execute(
        sa.select(
            flow_run.c.id,
            sa.func.coalesce(flow_run.c.end_time, flow_run.c.state_timestamp).label("anchor"),
        ).where(flow_run.c.id.in_(list(moves)))
    )
    shifts = {row.id: now - moves[row.id] - row.anchor for row in anchors if row.anchor}
    missing = set(moves) - set(shifts)
    if missing:
        raise LookupError(f"no flow run with a state for ids {sorted(map(str, missing))}")
    task_run = table(orm_models.TaskRun)
    task_run_state = table(orm_models.TaskRunState)
    owned: list[tuple[sa.Table, tuple[str, ...], sa.ColumnElement[Any], sa.FromClause]] = [
        (flow_run, _RUN_TIMES, flow_run.c.id, flow_run),
        (task_run, _RUN_TIMES, task_run.c.flow_run_id, task_run),
        (
            task_run_state,
            _STATE_TIMES,
            task_run.c.flow_run_id,
            task_run_state.join(task_run, task_run.c.id == task_run_state.c.task_run_id),
        ),
    ]
    children: list[tuple[type[orm_models.Base], tuple[str, ...]]] = [
        (orm_models.FlowRunState, _STATE_TIMES),
        (orm_models.Log, _STATE_TIMES),
        (orm_models.FlowRunInput, ("created", "updated")),
    ]
    for model, child_times in children:
        child = table(model)
        owned.append((child, child_times, child.c.flow_run_id, child))
    for target, times, owner, source in owned:
        await _shift_rows(conn, target, times, owner, source, shifts, now)


async def _shift_rows(
    conn: AsyncConnection,
    table: sa.Table,
    times: tuple[str, ...],
    owner: sa.ColumnElement[Any],
    source: sa.FromClause,
    shifts: Mapping[UUID, timedelta],
    now: datetime,
) -> None:
    """Read the rows' times and write them back shifted: exact to the
    microsecond on both databases, where SQL date arithmetic on SQLite keeps
    only milliseconds (and could make two states of one run collide on the
    unique (run, timestamp) index)."""
    rows = await conn.execute(
        sa.select(table.c.id, owner.label("owner"), *(table.c[t] for t in times))
        .select_from(source)
        .where(owner.in_(list(shifts)))
    )
    updates = []
    for row in rows:
        shift = shifts[row.owner]
        values = {f"new_{t}": _moved(getattr(row, t), shift, now) for t in times}
        updates.append({"row_id": row.id, **values})
    if updates:
        await conn.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("row_id"))
            .values({t: sa.bindparam(f"new_{t}") for t in times}),
            updates,
        )


def _moved(value: datetime | None, shift: timedelta, now: datetime) -> datetime | None:
    if value is None or value > now:
        return value
    return value + shift


async def make_history(api_url: str, database_url: str, specs: Sequence[RunSpec]) -> list[UUID]:
    """Make every run of `specs` through the API, then age those with an `ago`.

    A SQLite-backed server answers 503 under concurrent writes (PrefectClient
    retries those with backoff, but slowly), so runs are made two at a time
    there and eight at a time on PostgreSQL. Returns the ids in spec order.
    """
    limit = asyncio.Semaphore(2 if database_url.startswith("sqlite") else 8)

    async def one(client: PrefectClient, spec: RunSpec) -> UUID:
        async with limit:
            return await make_run(client, spec)

    async with PrefectClient(api_url) as client:
        ids = await asyncio.gather(*(one(client, spec) for spec in specs))
    await backdate(
        database_url, {i: s.ago for i, s in zip(ids, specs, strict=True) if s.ago is not None}
    )
    return list(ids)
