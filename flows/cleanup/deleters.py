"""The two ways a batch of approved runs goes: in-process, or through the API.

Each takes a batch as ``{run id: index of the rule that let it go}`` and
answers a ``Counted``: what went, what stayed because it changed, what the
server refused, and what no answer could confirm. ``InProcess`` re-selects the
batch by id with its rules' conditions and deletes it, with every row that
goes with it, in one locking transaction; ``ThroughApi`` reads, checks, deletes
exactly those ids, and reads again, so the count never comes from an answer a
lost response can falsify. ``flows.cleanup.deletion`` drives either.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Literal
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger

from flows.cleanup.patience import api_trouble, database_trouble, patiently
from flows.cleanup.rules import Policy
from flows.cleanup.targets.batches import chunked
from flows.cleanup.targets.flow_runs import delete_flow_runs
from flows.cleanup.targets.target import Rows
from flows.database import Database
from triggers import api

API_BATCH_LIMIT = 50  # the server's BULK_OPERATION_LIMIT on 3.8
READ_BACK_SECONDS = 10.0
"""How long a failed batch tries to read back which of its runs are gone."""

Path = Literal["database", "api-bulk", "api-per-run"]
logger = get_logger("janitor.deletion")


@dataclass
class Counted:
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    unconfirmed: int = 0
    rows: Rows = field(default_factory=Rows)


class _BatchFailed(Exception):
    """A batch stopped part-way; ``counted`` is what is known of it."""

    def __init__(self, counted: Counted, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.counted = counted


class InProcess:
    """One locking transaction per batch: re-select by id, delete, children too."""

    path: Path = "database"

    def __init__(self, database: Database, policy: Policy) -> None:
        self.database = database
        self.policy = policy

    async def delete(self, by_rule: dict[UUID, int]) -> Counted:
        """One batch, tried again while the database is passing trouble. An attempt
        whose commit answer was lost may have deleted its runs: the runs it asked for
        that are gone at the next look count as deleted (their other rows are not
        known then), and if no look is possible they are ``unconfirmed``."""
        asked: set[UUID] = set()
        try:
            rows = await patiently(lambda: self._delete(by_rule, asked), database_trouble)
        except Exception as exc:
            try:
                present = await asyncio.wait_for(self._present(asked), READ_BACK_SECONDS)
            except Exception:
                raise _BatchFailed(Counted(unconfirmed=len(asked)), exc) from exc
            gone = len(asked - present)
            counted = Counted(deleted=gone, rows=Rows({"flow_run": gone}) if gone else Rows())
            raise _BatchFailed(counted, exc) from exc
        deleted = rows.get("flow_run", 0)
        return Counted(deleted=deleted, skipped=len(by_rule) - deleted, rows=rows)

    async def _present(self, ids: set[UUID]) -> set[UUID]:
        import sqlalchemy as sa

        if not ids:
            return set()
        db = self.database.db
        present: set[UUID] = set()
        async with self.database.session() as session:
            for part in chunked(list(ids)):
                found = await session.execute(
                    sa.select(db.FlowRun.id).where(db.FlowRun.id.in_(part))
                )
                present.update(found.scalars())
        return present

    async def _delete(self, by_rule: dict[UUID, int], asked: set[UUID]) -> Rows:
        import sqlalchemy as sa

        db = self.database.db
        landed = len(asked - await self._present(asked)) if asked else 0
        groups: dict[int, list[UUID]] = {}
        for run_id, rule in by_rule.items():
            groups.setdefault(rule, []).append(run_id)
        # A bounded id list per statement: a batch may be tens of thousands of runs.
        wanted = [
            sa.and_(db.FlowRun.id.in_(part), self.policy.still_goes_sql(db, rule))
            for rule, ids in groups.items()
            for part in chunked(ids)
        ]
        async with self.database.transaction() as session:
            # Logs and artifacts have no cascade from flow_run: they go in the same
            # transaction, so a killed cleanup never leaves children of deleted runs.
            qualifying, rows = await delete_flow_runs(session, db, wanted)
            asked.update(qualifying)  # before the commit, whose answer may be lost
        if landed:  # an earlier attempt's commit did land; its answer was lost
            rows["flow_run"] += landed
        return rows


class ThroughApi:
    """Read a batch, check each run, delete exactly those ids, then read again to count."""

    def __init__(self, client: PrefectClient, policy: Policy) -> None:
        self.client = client
        self.policy = policy
        self.path: Path = "api-bulk"

    async def delete(self, by_rule: dict[UUID, int]) -> Counted:
        ids = list(by_rule)
        asked: set[UUID] = set()
        failure: Exception | None = None
        try:
            await patiently(lambda: self._ask(by_rule, asked), api_trouble)
        except Exception as exc:
            failure = exc
        try:
            left = await patiently(lambda: self._read(ids), api_trouble)
        except Exception as exc:
            raise _BatchFailed(Counted(unconfirmed=len(asked)), failure or exc) from (
                failure or exc
            )
        deleted = len(asked - set(left))
        if failure is not None:
            raise _BatchFailed(Counted(deleted=deleted), failure) from failure
        # Asked for but still there: refused by the server's own re-check (the run changed
        # in between), or not deleted; only the second is a failure.
        failed = sum(
            1
            for run_id in asked & set(left)
            if self.policy.still_goes(by_rule[run_id], left[run_id])
        )
        rows = Rows({"flow_run": deleted}) if deleted else Rows()
        return Counted(
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
            await patiently(partial(self._delete_one, run_id), api_trouble)

    async def _delete_one(self, run_id: UUID) -> None:
        with suppress(ObjectNotFound):  # gone already: the re-read counts it
            await self.client.delete_flow_run(run_id)
