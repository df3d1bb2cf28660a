"""The server's database, when this process can reach it: size, VACUUM, fast deletes.

Deleting through the API costs about thirty times what Prefect's own vacuum
pays in-process (see the benchmark). Where the worker can reach the server's
database we go through Prefect's own ORM tables and database interface, so the schema
stays Prefect's business. "Reachable" is proven, not assumed: the database
must hold the very flow run doing the cleanup, so a default SQLite file in the
worker's own PREFECT_HOME is never mistaken for the server's database.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from flows.errors import ArchiveError

if TYPE_CHECKING:
    from prefect.server.database import PrefectDBInterface
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

SQLITE_CACHE_KB = 16_384
SQLITE_WRITE_CACHE_KB = 65_536
SQLITE_LOCK_WAIT_MS = 5_000
BEFORE_COMMIT: ContextVar[Callable[[AsyncSession], Awaitable[None]] | None] = ContextVar(
    "janitor_before_commit", default=None
)
"""Awaited with the session just before a ``Database.transaction`` commits; what it
raises rolls the transaction back (the cleanup's archive writes each batch here)."""
URL_VARIABLES = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


@dataclass
class Database:
    """Prefect's database interface for the server this cleanup is talking to."""

    db: PrefectDBInterface
    dialect: str

    @classmethod
    async def find(cls, flow_run_id: UUID) -> tuple[Database | None, str]:
        """The server's database and why, or ``None`` and why not (for the run's log)."""
        if not any(os.environ.get(name) for name in URL_VARIABLES):
            return None, (
                "PREFECT_SERVER_DATABASE_CONNECTION_URL is not set in the worker's environment"
            )
        import sqlalchemy as sa
        from prefect.server.database import provide_database_interface

        try:
            db = provide_database_interface()
            dialect = db.database_config.connection_url.split(":", 1)[0].split("+", 1)[0]
            async with db.session_context() as session:
                found = await session.scalar(
                    sa.select(sa.func.count()).where(db.FlowRun.id == flow_run_id)
                )
        except Exception as exc:  # any driver error means "not reachable", never a crash
            return None, f"the database did not answer ({type(exc).__name__}: {exc})"
        if not found:
            return None, "the configured database does not hold this flow run: not the server's"
        return cls(db, dialect), f"in-process on the server's {dialect} database"

    @classmethod
    def configured(cls, url: str | None = None) -> Database:
        """The database ``url`` names, or else PREFECT_SERVER_DATABASE_CONNECTION_URL,
        taken on the caller's word (``scripts/restore.py``); never the default SQLite
        file of this process's PREFECT_HOME, which is not the server's."""
        from prefect.server.database import provide_database_interface
        from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, temporary_settings

        if url is None and not any(os.environ.get(name) for name in URL_VARIABLES):
            raise ArchiveError(
                "PREFECT_SERVER_DATABASE_CONNECTION_URL is not set: restoring writes the "
                "server's database directly, and no default is safe to guess",
                "set it to the server's database URL, or pass --database-url",
            )
        if url is None:
            db = provide_database_interface()
        else:
            with temporary_settings(updates={PREFECT_API_DATABASE_CONNECTION_URL: url}):
                db = provide_database_interface()
        dialect = db.database_config.connection_url.split(":", 1)[0].split("+", 1)[0]
        return cls(db, dialect)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One locking transaction (SQLite: BEGIN IMMEDIATE), like Prefect's own vacuum.

        On PostgreSQL it runs on a connection of its own without the 10 s statement
        timeout Prefect's sessions carry (``server.database.timeout``): a batch whose
        log or event delete is large must finish, not fail on the very databases a
        cleanup is for. On SQLite a lock held by another writer is waited for up to
        Prefect's timeout, then raised; the deletion retries the batch.
        """
        async with self._session(begin=True) as session:
            yield session
            if (before_commit := BEFORE_COMMIT.get()) is not None:
                await before_commit(session)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads that may be long (a manifest of a million runs)."""
        async with self._session(begin=False) as session:
            yield session

    @asynccontextmanager
    async def _session(self, begin: bool) -> AsyncIterator[AsyncSession]:
        import sqlalchemy as sa

        if self.dialect != "postgresql":
            async with self.db.session_context(
                begin_transaction=begin, with_for_update=begin
            ) as session:
                # Prefect gives every SQLite connection an 80 MB page cache. A read
                # streaming through the tables once gains little from it: 16 MB. A
                # deleting transaction rewrites index pages its own earlier statements
                # touched, and pages that do not fit are spilled to the WAL and written
                # again: 64 MB made a 20k-run deletion about 15% faster than 16 MB
                # (scripts/bench_cleanup.py). More buys less for more memory: at 300k
                # events, 256 MB deleted about 17% faster than 64 MB and took the
                # cleanup's peak from 224 MB to 376 MB (scripts/bench_retention.py).
                # Either is flat: SQLite takes pages as a transaction needs them.
                cache = SQLITE_WRITE_CACHE_KB if begin else SQLITE_CACHE_KB
                await session.execute(sa.text(f"PRAGMA cache_size = -{cache}"))
                # And 60 s of silent waiting for another writer's lock: a batch that
                # gives up after a few seconds is tried again by the deletion, which
                # logs each wait and leaves the server's own writers their turn.
                await session.execute(sa.text(f"PRAGMA busy_timeout = {SQLITE_LOCK_WAIT_MS}"))
                yield session
            return
        from sqlalchemy.ext.asyncio import AsyncSession

        engine = await self._maintenance_engine()
        async with AsyncSession(engine, expire_on_commit=False) as session:
            if begin:
                async with session.begin():
                    yield session
            else:
                yield session

    @property
    def connection_url(self) -> str:
        return str(self.db.database_config.connection_url)

    async def scalar(self, sql: str, **params: Any) -> Any:
        """One read-only query, for the metric probe."""
        import sqlalchemy as sa

        async with self.db.session_context() as session:
            return await session.scalar(sa.text(sql), params)

    async def size_bytes(self) -> int | None:
        import sqlalchemy as sa

        async with self.db.session_context() as session:
            if self.dialect == "sqlite":
                pages = await session.scalar(sa.text("PRAGMA page_count"))
                size = await session.scalar(sa.text("PRAGMA page_size"))
                return int(pages) * int(size) if pages is not None and size is not None else None
            if self.dialect == "postgresql":
                value = await session.scalar(sa.text("SELECT pg_database_size(current_database())"))
                return int(value) if value is not None else None
        return None

    async def vacuum(self) -> str:
        """Give freed pages back: SQLite rewrites the file, PostgreSQL also refreshes statistics."""
        statement = "VACUUM" if self.dialect == "sqlite" else "VACUUM ANALYZE"
        engine = await self._maintenance_engine()
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql(statement)
        return statement

    async def _maintenance_engine(self) -> AsyncEngine:
        """PostgreSQL sessions carry the API's 10 s statement timeout; VACUUM needs none."""
        if self.dialect != "postgresql":
            return await self.db.engine()
        from prefect.server.database.configurations import AsyncPostgresConfiguration

        config = AsyncPostgresConfiguration(connection_url=self.db.database_config.connection_url)
        config.timeout = None
        config.sqlalchemy_pool_size = 1
        config.sqlalchemy_max_overflow = 0
        return await config.engine()
