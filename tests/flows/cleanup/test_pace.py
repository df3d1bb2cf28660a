"""Batches sized by time: the rule itself, and a real deletion whose batches grow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prefect.client.orchestration import PrefectClient

from flows.cleanup.deletion import DeletionProgress
from flows.cleanup.pace import CEILING, Pace
from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history
from helpers.cleanup import surviving


def test_a_full_batch_well_under_the_time_doubles_the_next() -> None:
    pace = Pace(10, seconds=1.0)
    pace.took(0.1, full=True)
    assert pace.size == 20


def test_a_slow_batch_shrinks_the_next_in_proportion_but_at_most_by_half() -> None:
    pace = Pace(10, seconds=1.0)
    pace.took(1.25, full=True)
    assert pace.size == 8
    pace.took(10.0, full=True)
    assert pace.size == 4


def test_batches_grow_no_further_than_the_ceiling() -> None:
    pace = Pace(10, seconds=1.0)
    for _ in range(20):
        pace.took(0.01, full=True)
    assert pace.size == 10 * CEILING


def test_a_short_last_batch_says_nothing_unless_it_was_too_slow() -> None:
    pace = Pace(10, seconds=1.0)
    pace.took(0.01, full=False)
    assert pace.size == 10
    pace.took(2.0, full=False)
    assert pace.size == 5


def test_zero_seconds_keeps_every_batch_at_its_first_size() -> None:
    pace = Pace(10)
    pace.took(0.01, full=True)
    pace.took(100.0, full=True)
    assert pace.size == 10


@pytest.mark.anyio
async def test_in_process_batches_grow_from_batch_size_and_every_run_goes_once(
    server: LocalServer, flow_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cleanup.config import RetentionConfig
    from flows.cleanup.deletion import delete_runs
    from flows.cleanup.manifest import make_manifest
    from flows.cleanup.rules import resolve_policy
    from flows.database import Database
    from helpers.cleanup import against

    ids = await make_history(
        server.api_url,
        server.database_url,
        [RunSpec(flow_name, ago=timedelta(days=40)) for _ in range(40)],
    )
    config = RetentionConfig(flows=[flow_name], retention_days=30)
    seen: list[DeletionProgress] = []
    async with against(server, "database", monkeypatch), PrefectClient(server.api_url) as client:
        database, _ = await Database.find(ids[0])
        assert database is not None
        policy = await resolve_policy(config, client)
        manifest, _ = await make_manifest(policy, client, database)
        progress = await delete_runs(
            policy,
            manifest,
            client=client,
            database=database,
            batch_size=1,
            batch_seconds=60,
            on_progress=seen.append,
        )

    done = [report.done for report in seen]
    sizes = [after - before for before, after in zip([0, *done], done, strict=False)]
    # Each batch is far under a minute, so each one doubles the next, until the rest.
    assert sizes == [1, 2, 4, 8, 16, 9]
    assert (progress.deleted, progress.skipped, progress.rows["flow_run"]) == (40, 0, 40)
    assert await surviving(server.api_url, ids) == set()
