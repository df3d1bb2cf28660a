"""Deleting the approved runs: members of the manifest only, in batches, counted exactly.

The manifest (``flows.cleanup.manifest``) is what the approval named; each
batch is a slice of it, and of a slice only the runs that still qualify under
the rule that let each go (``Policy.still_goes``) go, so a run that changed
since the preview stays, a subflow freed by its parent's deletion is never
taken, and nothing outside the manifest can be, however often the server is
busy or an answer is lost. After the flow runs, ``delete_targets`` takes the
policy's other targets (``flows.cleanup.targets``) batch by batch.

Two paths share one loop. In-process (``Database``) a batch is re-selected by
id with its rules' conditions and deleted, with every row that goes with it
(``targets.flow_runs``), in one locking transaction without a statement
timeout, counted per table; a SQLite lock held by
another writer, or a dropped connection, is waited out and the batch tried
again. Through the API a batch is read, checked, and deleted with ``POST
/flow_runs/bulk_delete`` restricted to those ids and their rule's states and
cutoff (per-run deletes on servers without it); then the batch is read again,
and a run counts as deleted only when it was asked for and is gone. The count
never comes from the server's answer, which a lost response re-sent by the
client reports as ``deleted: []``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from pydantic import BaseModel, Field

from flows.cleanup.manifest import Manifest
from flows.cleanup.rules import Policy
from flows.cleanup.targets.flow_runs import delete_flow_runs
from flows.cleanup.targets.target import Rows, Target, capped_rows
from flows.database import Database
from flows.errors import CleanupError
from triggers import api
from triggers.errors import ExitCode

API_BATCH_LIMIT = 50  # the server's BULK_OPERATION_LIMIT on 3.8
RETRYABLE = {429, 502, 503, 504}
READ_BACK_SECONDS = 10.0
"""How long a failed batch tries to read back which of its runs are gone."""
PATIENCE_SECONDS = 180.0
"""How long one batch waits out a busy, locked or restarting server before failing."""

Path = Literal["database", "api-bulk", "api-per-run"]
logger = get_logger("janitor.deletion")
T = TypeVar("T")


class DeletionProgress(BaseModel):
    """Where a deletion stands; sent as events and shown as an artifact."""

    target: int = Field(description="How many runs were approved for deletion (the manifest).")
    deleted: int = Field(0, description="Runs of the manifest this cleanup deleted.")
    skipped: int = Field(
        0, description="Runs of the manifest left alone: changed since the preview, or gone."
    )
    failed: int = Field(0, description="Runs the server would not delete.")
    unconfirmed: int = Field(
        0,
        description="Runs asked for whose fate no answer confirmed: the server stopped "
        "answering before the batch could be read again. At most this many more are gone.",
    )
    rows: dict[str, int] = Field(
        default_factory=dict,
        description="Rows deleted per table: the runs, and what went with them.",
    )
    current: str = Field("flow runs", description="The target being deleted now.")
    elapsed_seconds: float = Field(0.0, description="Seconds since the deletion started.")
    path: Path = Field("api-bulk", description="How the runs are being deleted.")

    @property
    def done(self) -> int:
        return self.deleted + self.skipped + self.failed

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.target) if self.target else 1.0

    @property
    def runs_per_second(self) -> float:
        return self.deleted / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


OnProgress = Callable[[DeletionProgress], Awaitable[None] | None]


class DeletionFailed(CleanupError):
    """Deleting stopped part-way; ``progress`` says how far it got.

    Every run deleted was approved; the next cleanup picks up where this one stopped.
    """

    exit_code = ExitCode.SERVER

    def __init__(self, message: str, progress: DeletionProgress) -> None:
        super().__init__(message, "run the cleanup again once the cause is fixed")
        self.progress = progress

    def __str__(self) -> str:
        return self.cause


@dataclass
class _Counted:
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    unconfirmed: int = 0
    rows: Rows = field(default_factory=Rows)


class _BatchFailed(Exception):
    """A batch stopped part-way; ``counted`` is what is known of it."""

    def __init__(self, counted: _Counted, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.counted = counted


async def delete_runs(
    policy: Policy,
    manifest: Manifest,
    *,
    client: PrefectClient,
    database: Database | None = None,
    batch_size: int = 500,
    on_progress: OnProgress | None = None,
) -> DeletionProgress:
    """Delete the runs of ``manifest`` that still qualify, oldest first; say how it went."""
    started = time.monotonic()
    progress = DeletionProgress(target=len(manifest), path="database" if database else "api-bulk")
    deleter = _Api(client, policy) if database is None else _InProcess(database, policy)
    size = batch_size if database is not None else min(batch_size, API_BATCH_LIMIT)
    last = len(policy.rules) - 1
    for batch in manifest.batches(size):
        by_rule = {run_id: last if rule is None else rule for run_id, rule in batch}
        try:
            counted = await deleter.delete(by_rule)
        except _BatchFailed as failure:
            _add(progress, failure.counted)
            progress.elapsed_seconds = time.monotonic() - started
            raise DeletionFailed(str(failure), progress) from failure.__cause__
        except Exception as exc:
            progress.elapsed_seconds = time.monotonic() - started
            raise DeletionFailed(f"{type(exc).__name__}: {exc}", progress) from exc
        _add(progress, counted)
        progress.path = deleter.path
        progress.elapsed_seconds = time.monotonic() - started
        await _report(on_progress, progress)
    progress.elapsed_seconds = time.monotonic() - started
    return progress


async def delete_targets(
    targets: Sequence[Target],
    database: Database,
    progress: DeletionProgress,
    *,
    batch_size: int = 500,
    max_rows: int = 1_000_000,
    on_progress: OnProgress | None = None,
) -> DeletionProgress:
    """After the flow runs: each other target, batch by batch, until it has nothing
    left that qualifies or ``max_rows`` of its table went. Adds to ``progress``."""
    started = time.monotonic() - progress.elapsed_seconds
    for target in targets:
        progress.current = target.title
        taken = 0
        while taken < max_rows:
            size = min(batch_size, max_rows - taken)
            try:
                rows = await _patiently(
                    partial(target.delete_batch, database, size), _database_trouble
                )
            except Exception as exc:
                progress.elapsed_seconds = time.monotonic() - started
                raise DeletionFailed(
                    f"{target.title}: {type(exc).__name__}: {exc}", progress
                ) from exc
            if rows is None:
                break
            taken += capped_rows(target, rows)
            _add(progress, _Counted(rows=rows))
            progress.elapsed_seconds = time.monotonic() - started
            await _report(on_progress, progress)
    progress.elapsed_seconds = time.monotonic() - started
    return progress


def _add(progress: DeletionProgress, counted: _Counted) -> None:
    progress.deleted += counted.deleted
    progress.skipped += counted.skipped
    progress.failed += counted.failed
    progress.unconfirmed += counted.unconfirmed
    for table, rows in counted.rows.items():
        progress.rows[table] = progress.rows.get(table, 0) + rows


async def _report(on_progress: OnProgress | None, progress: DeletionProgress) -> None:
    """Progress reporting is a courtesy: a failure there never stops a deletion."""
    if on_progress is None:
        return
    try:
        result = on_progress(progress.model_copy())
        if result is not None:
            await result
    except Exception as exc:
        logger.warning("could not report progress (%s: %s)", type(exc).__name__, exc)


class _InProcess:
    """One locking transaction per batch: re-select by id, delete, children too."""

    path: Path = "database"

    def __init__(self, database: Database, policy: Policy) -> None:
        self.database = database
        self.policy = policy

    async def delete(self, by_rule: dict[UUID, int]) -> _Counted:
        """One batch, tried again while the database is passing trouble. An attempt
        whose commit answer was lost may have deleted its runs: the runs it asked for
        that are gone at the next look count as deleted (their other rows are not
        known then), and if no look is possible they are ``unconfirmed``."""
        asked: set[UUID] = set()
        try:
            rows = await _patiently(lambda: self._delete(by_rule, asked), _database_trouble)
        except Exception as exc:
            try:
                present = await asyncio.wait_for(self._present(asked), READ_BACK_SECONDS)
            except Exception:
                raise _BatchFailed(_Counted(unconfirmed=len(asked)), exc) from exc
            gone = len(asked - present)
            counted = _Counted(deleted=gone, rows=Rows({"flow_run": gone}) if gone else Rows())
            raise _BatchFailed(counted, exc) from exc
        deleted = rows.get("flow_run", 0)
        return _Counted(deleted=deleted, skipped=len(by_rule) - deleted, rows=rows)

    async def _present(self, ids: set[UUID]) -> set[UUID]:
        import sqlalchemy as sa

        if not ids:
            return set()
        db = self.database.db
        async with self.database.session() as session:
            found = await session.execute(sa.select(db.FlowRun.id).where(db.FlowRun.id.in_(ids)))
            return set(found.scalars())

    async def _delete(self, by_rule: dict[UUID, int], asked: set[UUID]) -> Rows:
        import sqlalchemy as sa

        db = self.database.db
        landed = len(asked - await self._present(asked)) if asked else 0
        groups: dict[int, list[UUID]] = {}
        for run_id, rule in by_rule.items():
            groups.setdefault(rule, []).append(run_id)
        query = sa.select(db.FlowRun.id).where(
            sa.or_(
                *(
                    sa.and_(db.FlowRun.id.in_(ids), self.policy.still_goes_sql(db, rule))
                    for rule, ids in groups.items()
                )
            )
        )
        if self.database.dialect == "postgresql":
            query = query.with_for_update()  # wait for, never skip, a run someone else holds
        async with self.database.transaction() as session:
            qualifying = list((await session.execute(query)).scalars().all())
            asked.update(qualifying)
            # Logs and artifacts have no cascade from flow_run: they go in the same
            # transaction, so a killed cleanup never leaves children of deleted runs.
            rows = await delete_flow_runs(session, db, qualifying)
        if landed:  # an earlier attempt's commit did land; its answer was lost
            rows["flow_run"] += landed
        return rows


_PASSING = {
    # PostgreSQL (asyncpg): the server went away, restarts, refuses connections for now.
    "AdminShutdownError",
    "CannotConnectNowError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "InterfaceError",
    "ObjectNotInPrerequisiteStateError",  # "database ... is not currently accepting connections"
    "TooManyConnectionsError",
}


def _database_trouble(exc: BaseException) -> bool:
    """A lock held by another writer, a connection lost or refused: worth waiting out.

    A batch's transaction commits whole or not at all, so trying it again is safe.
    """
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, OperationalError):  # SQLite "database is locked"; lost connections
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | OSError) or type(seen).__name__ in _PASSING:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


class _Api:
    """Read a batch, check each run, delete exactly those ids, then read again to count."""

    def __init__(self, client: PrefectClient, policy: Policy) -> None:
        self.client = client
        self.policy = policy
        self.path: Path = "api-bulk"

    async def delete(self, by_rule: dict[UUID, int]) -> _Counted:
        ids = list(by_rule)
        asked: set[UUID] = set()
        failure: Exception | None = None
        try:
            await _patiently(lambda: self._ask(by_rule, asked), _api_trouble)
        except Exception as exc:
            failure = exc
        try:
            left = await _patiently(lambda: self._read(ids), _api_trouble)
        except Exception as exc:
            raise _BatchFailed(_Counted(unconfirmed=len(asked)), failure or exc) from (
                failure or exc
            )
        deleted = len(asked - set(left))
        if failure is not None:
            raise _BatchFailed(_Counted(deleted=deleted), failure) from failure
        # Asked for but still there: refused by the server's own re-check (the run changed
        # in between), or not deleted; only the second is a failure.
        failed = sum(
            1
            for run_id in asked & set(left)
            if self.policy.still_goes(by_rule[run_id], left[run_id])
        )
        rows = Rows({"flow_run": deleted}) if deleted else Rows()
        return _Counted(
            deleted=deleted, skipped=len(ids) - deleted - failed, failed=failed, rows=rows
        )

    async def _read(self, ids: list[UUID]) -> dict[UUID, FlowRun]:
        runs = await self.client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
        )
        return {run.id: run for run in runs}

    async def _ask(self, by_rule: dict[UUID, int], asked: set[UUID]) -> None:
        """One attempt: what is left of the batch and still qualifies is asked for.

        A retried attempt reads again, so a run that changed meanwhile (retried in the
        UI, tagged ``keep``) is not asked for, and one already gone is not either.
        """
        present = await self._read(list(by_rule))
        wanted = [
            run_id
            for run_id, run in present.items()
            if self.policy.still_goes(by_rule[run_id], run)
        ]
        if not wanted:
            return
        asked.update(wanted)
        if self.path == "api-bulk":
            groups: dict[int, list[UUID]] = {}
            for run_id in wanted:
                groups.setdefault(by_rule[run_id], []).append(run_id)
            for rule, ids in groups.items():
                # Restricted by id and by the rule's own states and cutoff, so the
                # server checks once more what this side just checked.
                only = self.policy.rules[rule].selection.flow_run_filter(only=ids)
                body = only.model_dump(mode="json", exclude_unset=True)
                if await api.bulk_delete_flow_runs(self.client, body, len(ids)) is None:
                    break
            else:
                return
            self.path = "api-per-run"
            logger.info("this server has no POST /flow_runs/bulk_delete; deleting run by run")
        for run_id in wanted:
            # One by one, each waited out on its own: a busy answer does not send the
            # batch back to its start.
            await _patiently(partial(self._delete_one, run_id), _api_trouble)

    async def _delete_one(self, run_id: UUID) -> None:
        with suppress(ObjectNotFound):  # gone already: the re-read counts it
            await self.client.delete_flow_run(run_id)


def _api_trouble(exc: BaseException) -> bool:
    """A busy server (503 on SQLite), a restart, a dropped connection: worth waiting out."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in RETRYABLE


async def _patiently(
    call: Callable[[], Awaitable[T]], worth_waiting: Callable[[BaseException], bool]
) -> T:
    """Back off while ``worth_waiting`` says the trouble is passing, up to PATIENCE_SECONDS.

    The Prefect client already retries some of these for a few seconds; a server
    restart or a long lock takes longer, and slows a cleanup down instead of
    failing it.
    """
    deadline = time.monotonic() + PATIENCE_SECONDS
    delay = 0.5
    while True:
        try:
            return await call()
        except Exception as exc:
            if not worth_waiting(exc) or time.monotonic() + delay > deadline:
                raise
            logger.warning("waiting %.1f s: %s: %s", delay, type(exc).__name__, exc)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
