"""The server's database for the probe's few reads, without Prefect's server package.

Importing and setting up Prefect's database interface costs about a second in
a fresh process, most of a probe run that needs three small queries (see
``scripts/bench_probe.py``). This opens a plain SQLAlchemy engine on the same
URL instead, proves it is the server's database the same way the cleanup does
(it must hold the probe's own flow run), and falls back to Prefect's interface
when the plain engine cannot connect (for example TLS set through Prefect's
connect-args settings).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from flows.database import URL_VARIABLES, Database
from flows.probe.measures import DatabaseAccess


class Reader:
    """A read-only engine on the server's database."""

    def __init__(self, connection_url: str) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        options: dict[str, Any] = {"pool_size": 1, "max_overflow": 0}
        if connection_url.startswith("sqlite"):
            options = {"connect_args": {"timeout": 30}}
        self._url = connection_url
        self._engine = create_async_engine(connection_url, **options)
        self.dialect = self._engine.dialect.name

    @property
    def connection_url(self) -> str:
        return self._url

    async def scalar(self, sql: str, **params: Any) -> Any:
        import sqlalchemy as sa

        async with self._engine.connect() as connection:
            return await connection.scalar(sa.text(sql), params)

    async def holds(self, flow_run_id: uuid.UUID) -> bool:
        # Prefect stores ids as text on SQLite and as uuid on PostgreSQL.
        key: Any = str(flow_run_id) if self.dialect == "sqlite" else flow_run_id
        return bool(await self.scalar("SELECT count(*) FROM flow_run WHERE id = :id", id=key))

    async def close(self) -> None:
        await self._engine.dispose()


@asynccontextmanager
async def server_database(
    flow_run_id: uuid.UUID,
) -> AsyncIterator[tuple[DatabaseAccess | None, str]]:
    """The server's database and why, or ``None`` and why not (for the metrics' reasons)."""
    url = next((os.environ[name] for name in URL_VARIABLES if os.environ.get(name)), None)
    if url is None:
        yield None, "PREFECT_SERVER_DATABASE_CONNECTION_URL is not set in the probe's environment"
        return
    reader = Reader(url)
    try:
        try:
            found = await reader.holds(flow_run_id)
        except Exception:  # any driver trouble: let Prefect's own interface try
            database, why = await Database.find(flow_run_id)
            yield database, why
            return
        if not found:
            yield None, "the configured database does not hold this flow run: not the server's"
            return
        yield reader, f"the server's {reader.dialect} database"
    finally:
        await reader.close()
