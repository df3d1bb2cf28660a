"""Rows of a realistic, finished flow-run history, made fast and encoded for the driver.

`flows.history.bulk` writes them. Values are encoded here, once, in the form
Prefect's column types hand the driver (UUIDs as text; on SQLite, times as
'YYYY-MM-DD HH:MM:SS.ffffff' UTC text and intervals as times after the epoch;
JSON as text; enums by name): binding each value through Prefect's type
decorators made seeding three times slower. State and log ids are time-ordered
(UUIDv7) as Prefect makes them; flow and task run ids are random (UUIDv4).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prefect.server.database import orm_models
from prefect.server.schemas.core import FlowRunPolicy, TaskRunPolicy

Row = tuple[Any, ...]

#: Final states of seeded runs: cumulative odds, type, name and message.
_OUTCOMES = (
    (0.80, "COMPLETED", "Completed", None),
    (0.95, "FAILED", "Failed", "Flow run encountered an exception: ValueError: bad row"),
    (0.98, "CANCELLED", "Cancelled", "Flow run was cancelled by a user."),
    (1.00, "CRASHED", "Crashed", "Flow run infrastructure exited with non-zero status code 137."),
)
_TAG_SETS: tuple[list[str], ...] = (
    ["env:prod", "team:data"],
    ["env:prod", "team:data", "nightly"],
    ["env:prod", "team:ml"],
    ["env:staging", "team:data"],
    ["env:dev"],
    [],
)
_TASKS = ("extract", "transform", "load", "validate", "publish", "notify")
_ADJECTIVES = ("amber", "brave", "calm", "daring", "eager", "fuzzy", "gentle", "humble", "jolly")
_ANIMALS = ("otter", "lynx", "heron", "moose", "panda", "raven", "tapir", "walrus", "yak")
_DEPLOYED_SHARE = 0.9
_EPOCH = datetime(1970, 1, 1)

# The columns each generated row fills, in the order its tuple holds them.
# Every column with a Python-side default in Prefect's model must be here:
# SQLAlchemy would otherwise compile a parameter for it that nobody fills.
_FLOW_RUN = (
    *("id", "created", "updated", "name", "flow_id", "deployment_id", "work_queue_name"),
    *("auto_scheduled", "flow_version", "parameters", "context", "job_variables"),
    *("empirical_policy", "tags", "labels", "state_id", "state_type", "state_name"),
    *("state_timestamp", "run_count", "expected_start_time", "start_time", "end_time"),
    "total_run_time",
)
_FLOW_RUN_STATE: tuple[str, ...] = (
    *("id", "created", "updated", "flow_run_id", "type", "name", "timestamp", "message"),
    "state_details",
)
_TASK_RUN_STATE = tuple("task_run_id" if c == "flow_run_id" else c for c in _FLOW_RUN_STATE)
_TASK_RUN = (
    *("id", "created", "updated", "name", "flow_run_id", "task_key", "dynamic_key"),
    *("flow_run_run_count", "empirical_policy", "task_inputs", "tags", "labels", "state_id"),
    *("state_type", "state_name", "state_timestamp", "run_count", "expected_start_time"),
    *("start_time", "end_time", "total_run_time"),
)
_LOG: tuple[str, ...] = (
    *("id", "created", "updated", "name", "level", "flow_run_id", "task_run_id", "message"),
    "timestamp",
)
TABLES: tuple[tuple[str, type[orm_models.Base], tuple[str, ...]], ...] = (
    ("flow_runs", orm_models.FlowRun, _FLOW_RUN),
    ("flow_run_states", orm_models.FlowRunState, _FLOW_RUN_STATE),
    ("task_runs", orm_models.TaskRun, _TASK_RUN),
    ("task_run_states", orm_models.TaskRunState, _TASK_RUN_STATE),
    ("logs", orm_models.Log, _LOG),
)


@dataclass
class Chunk:
    """One chunk's rows per table, in the column order of `TABLES`."""

    flow_runs: list[Row] = field(default_factory=list)
    flow_run_states: list[Row] = field(default_factory=list)
    task_runs: list[Row] = field(default_factory=list)
    task_run_states: list[Row] = field(default_factory=list)
    logs: list[Row] = field(default_factory=list)
    #: (run id, final state id, updated) of runs inserted without their state.
    links: list[Row] = field(default_factory=list)


def _dump(value: Any) -> str:
    return json.dumps(value)


def _format_uuid(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class RowMaker:
    """Makes one chunk of rows at a time, already encoded for the driver."""

    def __init__(
        self,
        flow_id: UUID,
        deployment_id: UUID,
        flow_name: str,
        task_runs: int,
        logs: int,
        *,
        sqlite: bool,
        link_after_insert: bool,
        seed: int,
        window: tuple[datetime, timedelta],
    ) -> None:
        """`window` is the oldest end time (naive UTC) and the step between runs."""
        self.flow_id, self.deployment_id = str(flow_id), str(deployment_id)
        self.flow_name, self.task_count, self.log_count = flow_name, task_runs, logs
        self.link_after_insert = link_after_insert
        self.rng = random.Random(seed)
        # Ids must differ between two seedings with the same `seed`.
        self.ids = random.Random(os.urandom(16))
        self.window = window
        self.time: Callable[[datetime], Any]
        self.interval: Callable[[timedelta], Any]
        if sqlite:
            self.time = lambda t: t.isoformat(" ", "microseconds")
            self.interval = lambda d: (_EPOCH + d).isoformat(" ", "microseconds")
        else:
            self.time = lambda t: t.replace(tzinfo=UTC)
            self.interval = lambda d: d
        self.flow_labels = _dump({"prefect.flow.id": self.flow_id})
        self.deployed_labels = _dump(
            {"prefect.flow.id": self.flow_id, "prefect.deployment.id": self.deployment_id}
        )
        self.tag_sets = [_dump(tags) for tags in _TAG_SETS]
        self.flow_policy = _dump(FlowRunPolicy().model_dump(mode="json"))
        self.task_policy = _dump(TaskRunPolicy().model_dump(mode="json"))

    def uuid4(self) -> str:
        bits = self.ids.getrandbits(128) & ~(0xF << 76) & ~(0x3 << 62)
        return _format_uuid(bits | (0x4 << 76) | (0x2 << 62))

    def uuid7(self, at: datetime) -> str:
        """Time-ordered, like the ids Prefect gives states and logs."""
        ms = int((at - _EPOCH).total_seconds() * 1000)
        bits = self.ids.getrandbits(74)
        return _format_uuid(
            (ms << 80) | (0x7 << 76) | ((bits >> 62) << 64) | (0x2 << 62) | (bits & (2**62 - 1))
        )

    def chunk(self, first: int, count: int) -> Chunk:
        """Runs `first` to `first + count - 1` of the seeding, oldest first."""
        rows = Chunk()
        for index in range(first, first + count):
            self.run(rows, index)
        return rows

    def run(self, rows: Chunk, index: int) -> None:
        """One run, ending in its own slot of the window, with its states and children.

        Every state of a run gets a distinct timestamp: Prefect has a unique
        index on (flow_run_id, timestamp) and (task_run_id, timestamp).
        """
        rng, t = self.rng, self.time
        oldest, step = self.window
        roll = rng.random()
        _, state_type, state_name, message = next(o for o in _OUTCOMES if roll < o[0])
        deployed = rng.random() < _DEPLOYED_SHARE
        run_id = self.uuid4()
        end = oldest + step * (index + rng.random())
        duration = timedelta(seconds=5 + rng.random() * 595)
        start = end - duration
        expected = start - timedelta(seconds=0.2 + rng.random() * 4)
        created = expected - timedelta(seconds=rng.uniform(60, 7200)) if deployed else expected
        details = _dump({"flow_run_id": run_id})
        history = [("RUNNING", "Running", start, None), (state_type, state_name, end, message)]
        if deployed:
            at_utc = expected.replace(tzinfo=UTC).isoformat()
            scheduled = _dump({"flow_run_id": run_id, "scheduled_time": at_utc})
            history[:0] = [("SCHEDULED", "Scheduled", created, scheduled)]
            history.insert(1, ("PENDING", "Pending", start - (start - expected) / 2, None))
        else:
            history.insert(0, ("PENDING", "Pending", created, None))
        final_id = ""
        for kind, name, at, extra in history:
            final_id, when = self.uuid7(at), t(at)
            text = message if kind == state_type else None
            state_details = extra if kind == "SCHEDULED" else details
            rows.flow_run_states.append(
                (final_id, when, when, run_id, kind, name, when, text, state_details)
            )
        tags = rng.choice(self.tag_sets)
        run_name = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_ANIMALS)}"
        ended = t(end)
        rows.flow_runs.append(
            (
                *(run_id, t(created), ended, run_name, self.flow_id),
                self.deployment_id if deployed else None,
                "default" if deployed else None,
                deployed,
                "1f0c2d9e",
                '{"batch_size": 1000}' if deployed else "{}",
                *("{}", "{}", self.flow_policy, tags),
                self.deployed_labels if deployed else self.flow_labels,
                None if self.link_after_insert else final_id,
                *(state_type, state_name, ended, 1, t(expected), t(start), ended),
                self.interval(duration),
            )
        )
        if self.link_after_insert:
            rows.links.append((run_id, final_id, ended))
        task_ids = self.task_runs(rows, run_id, tags, state_type, start, duration)
        self.logs(rows, run_id, run_name, state_name, task_ids, start, duration)

    def task_runs(
        self,
        rows: Chunk,
        run_id: str,
        tags: str,
        run_state: str,
        start: datetime,
        duration: timedelta,
    ) -> list[str]:
        """One after another inside the flow run; the last ends as the run did."""
        t = self.time
        labels = _dump({"prefect.flow.id": self.flow_id, "prefect.flow-run.id": run_id})
        slot = duration * 0.9 / max(self.task_count, 1)
        ids = []
        for i in range(self.task_count):
            task = _TASKS[i % len(_TASKS)]
            task_id = self.uuid4()
            ids.append(task_id)
            queued = start + duration * 0.05 + slot * i
            began, ended = queued + slot * 0.01, queued + slot * 0.95
            kind = run_state if i == self.task_count - 1 else "COMPLETED"
            name = kind.title()
            details = _dump({"flow_run_id": run_id, "task_run_id": task_id})
            final_id = ""
            q, b, e = t(queued), t(began), t(ended)
            for at, when, state_kind, state_name in (
                (queued, q, "PENDING", "Pending"),
                (began, b, "RUNNING", "Running"),
                (ended, e, kind, name),
            ):
                final_id = self.uuid7(at)
                rows.task_run_states.append(
                    (final_id, when, when, task_id, state_kind, state_name, when, None, details)
                )
            rows.task_runs.append(
                (
                    *(task_id, q, e, f"{task}-{i}", run_id),
                    *(f"{self.flow_name}.{task}-5f3a{i:04d}", "0", 1, self.task_policy, "{}"),
                    *(tags, labels, final_id, kind, name, e, 1, q, b),
                    *(e, self.interval(ended - began)),
                )
            )
        return ids

    def logs(
        self,
        rows: Chunk,
        run_id: str,
        run_name: str,
        state_name: str,
        task_ids: list[str],
        start: datetime,
        duration: timedelta,
    ) -> None:
        """A first and a last line from the flow run's logger, the lines in
        between from its task runs in turn, as Prefect writes them."""
        t = self.time
        step = duration / max(self.log_count, 1)
        last = self.log_count - 1
        for i in range(self.log_count):
            task_id = task_ids[(i - 1) % len(task_ids)] if task_ids and 0 < i < last else None
            if i == 0:
                message = f"Beginning flow run {run_name!r} for flow {self.flow_name!r}"
            elif i == last:
                message = f"Finished in state {state_name}()"
            else:
                message = f"Processed {1000 * i} records" if task_id else "Waiting for results"
            at = start + step * i
            when = t(at)
            rows.logs.append(
                (
                    *(self.uuid7(at), when, when),
                    "prefect.task_runs" if task_id else "prefect.flow_runs",
                    40 if i == last and state_name != "Completed" else 20,
                    *(run_id, task_id, message, when),
                )
            )
