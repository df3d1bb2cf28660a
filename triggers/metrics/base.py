"""What every metric is: a name, a unit, a description, a query, and how it is measured.

A metric measures; it never decides. Rules (threshold, operator, how long)
live in the trigger spec and are evaluated by the probe, so a new metric is
one small class and nothing else changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from prefect.client.orchestration import PrefectClient

from triggers.base import SpecModel
from triggers.errors import JanitorError
from triggers.units import Unit


class MetricUnavailable(JanitorError):
    """The metric cannot be measured here; rules on it neither fire nor resolve."""

    def __init__(self, reason: str, fix: str = "") -> None:
        self.reason = reason
        self.fix = fix
        super().__init__(f"{reason} ({fix})" if fix else reason)


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


class NoQuery(SpecModel):
    """This metric takes no query."""


class Metric(ABC):
    """One entry of the catalog."""

    name: ClassVar[str]
    unit: ClassVar[Unit]
    description: ClassVar[str]
    query_model: ClassVar[type[SpecModel]] = NoQuery
    windowed: ClassVar[bool] = False
    """Windowed metrics look back over a rule's ``range``; the others are a snapshot."""

    @abstractmethod
    async def measure(self, source: Source, query: Any, window: timedelta) -> float | None:
        """The value in ``unit``; ``None`` when there is no data (no runs in the window).

        Raises ``MetricUnavailable`` when the value cannot be had at all.
        """
