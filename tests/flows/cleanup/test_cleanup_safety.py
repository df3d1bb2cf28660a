"""The safety invariants, on seeded history, through both deletion paths and both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.cleanup.flow import CleanupOutcome
from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history
from helpers.cleanup import RunCleanup, events_of, names, surviving

pytestmark = pytest.mark.anyio

OLD = timedelta(days=40)
TERMINAL = ["Completed", "Failed", "Cancelled", "Crashed"]
NON_TERMINAL = ["Running", "Scheduled", "Pending", "Paused", "Late", "Cancelling"]


async def test_adversarial_config_deletes_only_old_terminal_unprotected_runs(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    terminal = [
        RunSpec(flow_name, state, ago=OLD, tags=["keep", "audit"] if i % 2 else ["etl"])
        for i, state in enumerate(TERMINAL * 2)
    ]
    # Runs that may still change, however old they look, must survive anything.
    live = [RunSpec(flow_name, state, ago=OLD * 3) for state in NON_TERMINAL]
    specs = terminal + live
    ids = await make_history(server.api_url, server.database_url, specs)

    report = await run_cleanup(
        retention_days=0,
        states=TERMINAL,
        max_runs=10_000_000,
        protected_tags=["keep"],
        flows=[flow_name],
        approval="none",
    )

    doomed = {
        run_id
        for run_id, spec in zip(ids, specs, strict=True)
        if spec.state in TERMINAL and "keep" not in spec.tags
    }
    assert await surviving(server.api_url, ids) == set(ids) - doomed
    assert report.outcome is CleanupOutcome.DELETED
    assert report.preview is not None
    assert report.preview.protected == 4
    assert report.preview.to_delete == len(doomed) == 4
    assert report.summary is not None
    assert report.summary.deleted == 4
    assert report.summary.failed == 0


async def test_runs_that_ended_after_the_cutoff_survive(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    specs = [
        RunSpec(flow_name, "Completed", ago=timedelta(days=31)),
        RunSpec(flow_name, "Failed", ago=timedelta(days=45)),
        RunSpec(flow_name, "Completed", ago=timedelta(days=29)),
        RunSpec(flow_name, "Failed", ago=timedelta(hours=1)),
    ]
    ids = await make_history(server.api_url, server.database_url, specs)

    report = await run_cleanup(retention_days=30, flows=[flow_name], approval="none")

    assert await surviving(server.api_url, ids) == set(ids[2:])
    assert report.summary is not None
    assert report.summary.deleted == 2


async def test_never_more_than_the_approved_count_and_oldest_first(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str, path: str
) -> None:
    """In-process every eligible run is counted; through the API, where every page is a
    request, reading stops at the cap and the preview says more are eligible."""
    specs = [RunSpec(flow_name, "Completed", ago=timedelta(days=40 + day)) for day in range(6)]
    ids = await make_history(server.api_url, server.database_url, specs)

    report = await run_cleanup(max_runs=4, batch_size=3, flows=[flow_name], approval="none")

    assert report.preview is not None
    if path == "database":
        assert (report.preview.eligible, report.preview.to_delete) == (6, 4)
        assert not report.preview.more_eligible
    else:
        assert (report.preview.eligible, report.preview.to_delete) == (4, 4)
        assert report.preview.more_eligible
    assert report.summary is not None
    assert report.summary.deleted == 4
    assert await surviving(server.api_url, ids) == set(ids[:2])  # the two newest stay


async def test_dry_run_deletes_nothing_and_reports_what_it_would(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    specs = [
        RunSpec(flow_name, "Completed", ago=OLD, task_runs=2, logs=3),
        RunSpec(flow_name, "Crashed", ago=OLD, task_runs=2, logs=3),
        RunSpec(flow_name, "Completed", ago=OLD, tags=["keep"]),
        RunSpec(flow_name, "Running", ago=OLD),
    ]
    ids = await make_history(server.api_url, server.database_url, specs)

    report = await run_cleanup(dry_run=True, flows=[flow_name], approval="human")

    assert report.outcome is CleanupOutcome.DRY_RUN
    assert await surviving(server.api_url, ids) == set(ids)
    preview = report.preview
    assert preview is not None
    assert (preview.matching, preview.protected, preview.to_delete) == (3, 1, 2)
    assert preview.by_state == {"COMPLETED": 1, "CRASHED": 1}
    assert [(count.name, count.runs) for count in preview.by_flow] == [(flow_name, 2)]
    assert {run.id for run in preview.sample} == set(ids[:2])
    assert preview.task_runs == 4
    assert preview.logs >= 6  # the server adds its own log lines to some runs
    assert report.flow_run_id is not None
    events = await events_of(server.api_url, report.flow_run_id, "janitor.cleanup.previewed")
    assert names(events) == ["janitor.cleanup.previewed"]
    assert events[0]["payload"]["dry_run"] is True
    assert events[0]["payload"]["to_delete"] == 2


async def test_nothing_to_clean_says_so_and_stops(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    ids = await make_history(
        server.api_url,
        server.database_url,
        [RunSpec(flow_name, "Completed", ago=timedelta(days=1))],
    )

    report = await run_cleanup(flows=[flow_name], approval="none")

    assert report.outcome is CleanupOutcome.NOTHING_TO_DO
    assert await surviving(server.api_url, ids) == set(ids)
    assert report.flow_run_id is not None
    events = await events_of(server.api_url, report.flow_run_id, "janitor.cleanup.nothing-to-do")
    assert names(events) == ["janitor.cleanup.nothing-to-do"]


async def test_subflows_freed_by_their_parents_deletion_are_not_taken_in_their_place(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    """Deleting a parent turns its subflow run top-level; the next batch must not take it."""
    parents = await make_history(
        server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD, task_runs=1)] * 3
    )
    async with PrefectClient(server.api_url) as client:
        task_runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=parents))
        )
    children = await make_history(
        server.api_url,
        server.database_url,
        [RunSpec(flow_name, ago=OLD, parent_task_run_id=task.id) for task in task_runs],
    )

    report = await run_cleanup(flows=[flow_name], approval="none", batch_size=1, batch_seconds=0)

    assert await surviving(server.api_url, parents + children) == set(children)
    assert report.summary is not None
    assert (report.summary.approved, report.summary.deleted) == (3, 3)


async def test_protected_tags_are_patterns_that_ignore_case(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    tags = [["Keep"], ["KEEP-forever"], ["keeper"], ["pin-7"], ["pinned"], ["etl"], []]
    ids = await make_history(
        server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD, tags=t) for t in tags]
    )

    report = await run_cleanup(
        flows=[flow_name], approval="none", protected_tags=["keep*", "pin-?"]
    )

    kept = {ids[0], ids[1], ids[2], ids[3]}
    assert await surviving(server.api_url, ids) == kept
    assert report.preview is not None
    assert (report.preview.protected, report.preview.to_delete) == (4, 3)
