"""Rows for the retention targets, written straight into the server's database.

Events arrive over a websocket and orphans only exist after something went
wrong, so the tests write these rows through Prefect's own table definitions
(as ``flows.history`` does for runs), at the times the test needs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from prefect.server.database import orm_models

from flows.history.seed import database_engine, table


async def insert(database_url: str, model: type[orm_models.Base], rows: Sequence[dict]) -> None:
    engine = database_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(table(model)), list(rows))
    finally:
        await engine.dispose()


async def existing(
    database_url: str, model: type[orm_models.Base], ids: Sequence[UUID]
) -> set[UUID]:
    engine = database_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                sa.select(table(model).c.id).where(table(model).c.id.in_(list(ids)))
            )
            return set(found.scalars().all())
    finally:
        await engine.dispose()


async def scalar(database_url: str, query: Any) -> Any:
    engine = database_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(query)
    finally:
        await engine.dispose()


def event(
    kind: str, resource: str, ago: timedelta, resources: int = 2, at: datetime | None = None
) -> tuple[dict, list[dict]]:
    """One event row of type ``kind`` about ``resource`` (``ago``, or exactly ``at``), and
    its resource rows."""
    at = at or datetime.now(UTC) - ago
    event_id = uuid.uuid4()
    row = {
        "id": event_id,
        "occurred": at,
        "event": kind,
        "resource_id": resource,
        "resource": {"prefect.resource.id": resource},
        "related_resource_ids": [],
        "related": [],
        "payload": {},
        "received": at,
        "recorded": at,
        "follows": None,
    }
    resource_rows = [
        {
            "id": uuid.uuid4(),
            "occurred": at,
            "resource_id": resource if i == 0 else f"{resource}.related.{i}",
            "resource_role": "" if i == 0 else "related",
            "resource": {"prefect.resource.id": resource},
            "event_id": event_id,
        }
        for i in range(resources)
    ]
    return row, resource_rows


def log(flow_run_id: UUID | None, ago: timedelta, task_run_id: UUID | None = None) -> dict:
    at = datetime.now(UTC) - ago
    return {
        "id": uuid.uuid4(),
        "created": at,
        "updated": at,
        "name": "janitor.test",
        "level": 20,
        "flow_run_id": flow_run_id,
        "task_run_id": task_run_id,
        "message": "a line",
        "timestamp": at,
    }


def artifact(key: str, flow_run_id: UUID | None, ago: timedelta) -> dict:
    at = datetime.now(UTC) - ago
    return {
        "id": uuid.uuid4(),
        "created": at,
        "updated": at,
        "key": key,
        "flow_run_id": flow_run_id,
        "task_run_id": None,
        "type": "markdown",
        "data": "# report",
        "description": None,
        "metadata_": None,
    }


def collection(latest: dict) -> dict:
    return {
        "id": uuid.uuid4(),
        "key": latest["key"],
        "latest_id": latest["id"],
        "flow_run_id": latest["flow_run_id"],
        "task_run_id": None,
        "type": latest["type"],
        "data": latest["data"],
        "description": None,
        "metadata_": None,
    }
