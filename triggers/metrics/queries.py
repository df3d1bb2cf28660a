"""The ``query:`` of each metric: which runs or which table it looks at.

Validated when the YAML is loaded (a metric trigger's ``query``) and again
when the probe reads a published rule, so both sides agree on the filters.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from prefect.client.schemas.objects import StateType
from pydantic import BeforeValidator, Field, field_validator

from triggers.hints import did_you_mean
from triggers.specmodel import SpecModel
from triggers.units import Duration


class NoQuery(SpecModel):
    """This metric takes no query."""


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


StateTypeName = Annotated[StateType, BeforeValidator(_upper)]


class RunScope(SpecModel):
    """Which runs a metric looks at; every filter given must match."""

    flows: list[str] = Field(default_factory=list, description="Only runs of these flows.")
    deployments: list[str] = Field(
        default_factory=list,
        description="Only runs of these deployments, as flow-name/deployment-name.",
    )
    tags: list[str] = Field(
        default_factory=list, description="Only runs carrying every one of these tags."
    )


class RunCountQuery(RunScope):
    """Which runs a count counts."""

    states: list[StateTypeName] = Field(
        default_factory=list,
        description="Only runs in these state types: COMPLETED, FAILED, CANCELLED, CRASHED, "
        "RUNNING, SCHEDULED, PENDING, PAUSED, CANCELLING.",
    )
    state_names: list[str] = Field(
        default_factory=list, description="Only runs in states of these names, e.g. Late."
    )
    older_than: Duration | None = Field(
        None,
        description="Only runs that ended more than this long ago (for example 30d); "
        "runs that have not ended are then left out, as the cleanup's retention does.",
    )


@cache
def prefect_tables() -> frozenset[str]:
    """The tables of the installed Prefect's schema, so a name always matches the server's."""
    from prefect.server.database.orm_models import Base

    return frozenset(Base.metadata.tables)


class TableQuery(SpecModel):
    """One table of Prefect's schema."""

    table: str = Field(
        description="A table of Prefect's schema: events, log, flow_run, task_run, "
        "flow_run_state, task_run_state, artifact, ..."
    )

    @field_validator("table")
    @classmethod
    def _known_table(cls, value: str) -> str:
        tables = prefect_tables()
        if value not in tables:
            hint = did_you_mean(value, tables) or "tables: " + ", ".join(sorted(tables))
            raise ValueError(f"{value!r} is not a table of Prefect's schema; {hint}")
        return value


AGE_COLUMNS: dict[str, str] = {
    "events": "occurred",
    "event_resources": "occurred",
    "log": "timestamp",
    "flow_run": "end_time",
    "task_run": "end_time",
    "flow_run_state": "timestamp",
    "task_run_state": "timestamp",
    "artifact": "created",
}
"""The tables whose rows age, and the indexed time each row's age is measured by."""


class AgeQuery(SpecModel):
    """One table whose rows age, and optionally the age that counts as overdue."""

    table: str = Field(
        description="events, event_resources, log, flow_run, task_run, flow_run_state, "
        "task_run_state or artifact. Runs age from when they ended."
    )
    older_than: Duration | None = Field(
        None,
        description="For database.rows_older_than: rows older than this (for example 7d, "
        "the server's event retention) count as overdue.",
    )

    @field_validator("table")
    @classmethod
    def _ageing_table(cls, value: str) -> str:
        if value not in AGE_COLUMNS:
            hint = did_you_mean(value, AGE_COLUMNS) or "tables: " + ", ".join(AGE_COLUMNS)
            raise ValueError(f"{value!r} has no age to measure; {hint}")
        return value
