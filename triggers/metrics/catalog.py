"""The metric catalog: what the probe can measure, by name, in which unit, with which query.

A metric here is a definition, not a measurement: the spec validates metric
triggers against it, sync publishes rules that name it, and the probe
(``flows.probe.measures``) measures each entry. Deciding (threshold,
operator, how long) belongs to the rule, never to the metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from triggers.metrics.queries import AgeQuery, NoQuery, RunCountQuery, RunScope, TableQuery
from triggers.specmodel import SpecModel
from triggers.units import Unit

Reads = Literal["api", "database"]


@dataclass(frozen=True)
class Metric:
    """One entry of the catalog."""

    name: str
    unit: Unit
    description: str
    reads: Reads = "api"
    """Where the value comes from: the Prefect API, or the server's database itself."""
    query_model: type[SpecModel] = NoQuery
    windowed: bool = False
    """Windowed metrics look back over a rule's ``range``; the others are a snapshot."""


CATALOG: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric(
            "database.size_bytes",
            Unit.BYTES,
            "The size of the server's database: the SQLite file plus its write-ahead log, "
            "or pg_database_size on PostgreSQL.",
            reads="database",
        ),
        Metric(
            "database.table_rows",
            Unit.COUNT,
            "Rows in one table of the server's database: an exact count on SQLite, "
            "the planner's estimate (pg_class.reltuples) on PostgreSQL, which costs "
            "nothing on a table of millions.",
            reads="database",
            query_model=TableQuery,
        ),
        Metric(
            "database.table_bytes",
            Unit.BYTES,
            "Bytes one table holds, its indexes included: dbstat on SQLite, "
            "pg_total_relation_size on PostgreSQL.",
            reads="database",
            query_model=TableQuery,
        ),
        Metric(
            "database.oldest_row_age",
            Unit.SECONDS,
            "How old the oldest row of a table is (events by when they occurred, finished "
            "runs by when they ended): above the retention, retention is not keeping up. "
            "For runs it counts protected and deliberately kept ones too, so watch events "
            "and logs, or set the threshold above the longest rule.",
            reads="database",
            query_model=AgeQuery,
        ),
        Metric(
            "database.rows_older_than",
            Unit.COUNT,
            "Rows of a table older than query.older_than: how far behind retention is.",
            reads="database",
            query_model=AgeQuery,
        ),
        Metric(
            "flow_runs.count",
            Unit.COUNT,
            "How many flow runs match the query (states, age, tags, flows, deployments).",
            query_model=RunCountQuery,
        ),
        Metric(
            "task_runs.count",
            Unit.COUNT,
            "How many task runs match the query (states, age, tags; flows and deployments "
            "of their flow runs).",
            query_model=RunCountQuery,
        ),
        Metric(
            "flow_runs.lateness",
            Unit.SECONDS,
            "Average seconds late of flow runs expected to start within the range "
            "(runs on time count as 0; runs still waiting count until now).",
            query_model=RunScope,
            windowed=True,
        ),
        Metric(
            "flow_runs.duration",
            Unit.SECONDS,
            "Average run time of flow runs expected to start within the range that "
            "finished (Completed, Failed or Crashed).",
            query_model=RunScope,
            windowed=True,
        ),
        Metric(
            "flow_runs.success_rate",
            Unit.PERCENT,
            "Percent of the flow runs expected to start within the range that finished "
            "Completed, among those that finished (Completed, Failed or Crashed).",
            query_model=RunScope,
            windowed=True,
        ),
    )
}
