"""Approval paths end to end: a person answering the form, silence, the AI failing, a queue."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate, VariableCreate
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
)
from prefect.client.schemas.sorting import FlowRunSort

from flows.cleanup.config import AISettings
from flows.cleanup.flow import CleanupOutcome, CleanupReport
from flows.devstack.server import LocalServer
from flows.errors import ScopeError
from flows.history.seed import RunSpec, make_history
from flows.lock import LIMIT_NAME, ensure_limit
from helpers.cleanup import (
    RunCleanup,
    events_of,
    names,
    paused_cleanups,
    release_slot,
    surviving,
)

pytestmark = pytest.mark.anyio

OLD = timedelta(days=40)


@pytest.fixture
def path() -> str:
    """Approval does not depend on the deletion path; the API path is enough here."""
    return "api"


async def answer(api_url: str, flow_run_id: UUID, **form: object) -> None:
    async with PrefectClient(api_url) as client:
        result = await client.resume_flow_run(flow_run_id, run_input=dict(form))
    assert result.status.value == "ACCEPT", result


async def test_a_person_approves_in_the_form_and_the_runs_go(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)] * 3)
    running = asyncio.create_task(run_cleanup(flows=[flow_name], approval="human"))
    (paused,) = await paused_cleanups(server.api_url)

    await answer(server.api_url, paused, approve=True, notes="old batch", approver="alice")
    report = await running

    assert report.outcome is CleanupOutcome.DELETED
    assert report.verdict is not None
    assert (report.verdict.via, report.verdict.approver) == ("human", "alice")
    assert await surviving(server.api_url, ids) == set()
    events = await events_of(server.api_url, paused, "janitor.deletion.completed")
    assert names(events) == [
        "janitor.cleanup.previewed",
        "janitor.approval.requested",
        "janitor.approval.granted",
        "janitor.deletion.started",
        "janitor.deletion.progress",
        "janitor.deletion.completed",
    ]
    granted = events[2]["payload"]
    assert (granted["approver"], granted["notes"], granted["to_delete"]) == (
        "alice",
        "old batch",
        3,
    )
    assert events[-1]["payload"]["deleted"] == 3
    related = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in events[0]["related"]}
    assert related["flow-run"] == f"prefect.flow-run.{paused}"


async def test_a_person_rejects_and_nothing_is_deleted(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)] * 2)
    running = asyncio.create_task(run_cleanup(flows=[flow_name], approval="human"))
    (paused,) = await paused_cleanups(server.api_url)

    await answer(server.api_url, paused, approve=False, notes="still debugging these")
    report = await running

    assert report.outcome is CleanupOutcome.REJECTED
    assert await surviving(server.api_url, ids) == set(ids)
    events = await events_of(server.api_url, paused, "janitor.approval.rejected")
    assert names(events)[-1] == "janitor.approval.rejected"
    assert events[-1]["payload"]["notes"] == "still debugging these"


async def test_no_answer_in_time_is_a_rejection(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])

    report = await run_cleanup(flows=[flow_name], approval="human", approval_timeout_seconds=5)

    assert report.outcome is CleanupOutcome.TIMED_OUT
    assert await surviving(server.api_url, ids) == set(ids)
    assert report.flow_run_id is not None
    events = await events_of(server.api_url, report.flow_run_id, "janitor.approval.timed-out")
    assert names(events)[-1] == "janitor.approval.timed-out"


async def test_an_ai_reviewer_that_cannot_run_fails_closed(
    server: LocalServer,
    run_cleanup: RunCleanup,
    flow_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])

    report = await run_cleanup(
        flows=[flow_name], approval="ai", ai=AISettings(model="anthropic:claude-sonnet-4-5")
    )

    assert report.outcome is CleanupOutcome.REJECTED
    assert await surviving(server.api_url, ids) == set(ids)
    assert report.flow_run_id is not None
    events = await events_of(server.api_url, report.flow_run_id, "janitor.approval.rejected")
    assert names(events)[-2:] == ["janitor.approval.requested", "janitor.approval.rejected"]
    rejected = events[-1]["payload"]
    assert rejected["via"] == "ai"
    assert "ANTHROPIC_API_KEY" in rejected["error"]


async def test_an_unsure_ai_hands_over_to_a_person(
    server: LocalServer,
    run_cleanup: RunCleanup,
    flow_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    settings = AISettings(model="anthropic:claude-sonnet-4-5", on_low_confidence="human")
    running = asyncio.create_task(run_cleanup(flows=[flow_name], approval="ai", ai=settings))
    (paused,) = await paused_cleanups(server.api_url)

    await answer(server.api_url, paused, approve=True, approver="bob")
    report = await running

    assert report.outcome is CleanupOutcome.DELETED
    assert await surviving(server.api_url, ids) == set()
    events = await events_of(server.api_url, paused, "janitor.deletion.completed")
    requested = [e["payload"] for e in events if e["event"] == "janitor.approval.requested"]
    assert [payload["via"] for payload in requested] == ["ai", "human"]
    assert "ANTHROPIC_API_KEY" in requested[1]["escalated"]


async def test_five_cleanups_at_once_give_one_and_four_skipped(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    runs = [asyncio.create_task(run_cleanup(flows=[flow_name], approval="human")) for _ in range(5)]
    (paused,) = await paused_cleanups(server.api_url)
    # The four that could not take the slot end on their own while the fifth still waits.
    done: set[asyncio.Task[CleanupReport]] = set()
    waiting = set(runs)
    while len(done) < 4:
        more, waiting = await asyncio.wait(waiting, timeout=60, return_when="FIRST_COMPLETED")
        assert more, "the four skipped cleanups did not end"
        done |= more
    skipped = [task.result() for task in done]
    assert [report.outcome for report in skipped] == [CleanupOutcome.SKIPPED] * 4

    await answer(server.api_url, paused, approve=False)
    reports = await asyncio.gather(*runs)

    assert sorted(report.outcome.value for report in reports) == ["rejected"] + ["skipped"] * 4
    assert await surviving(server.api_url, ids) == set(ids)
    for report in skipped:
        assert report.flow_run_id is not None
        events = await events_of(server.api_url, report.flow_run_id, "janitor.cleanup.skipped")
        assert names(events) == ["janitor.cleanup.skipped"]


async def test_a_loosened_cleanup_slot_is_put_back_to_one(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    async with PrefectClient(server.api_url) as client:
        await client.create_flow_from_name(flow_name)
        await ensure_limit(client)
        await client.update_global_concurrency_limit(
            LIMIT_NAME, GlobalConcurrencyLimitUpdate(limit=5, active=False)
        )

    report = await run_cleanup(flows=[flow_name], approval="none")

    assert report.outcome is CleanupOutcome.NOTHING_TO_DO
    async with PrefectClient(server.api_url) as client:
        limit = await client.read_global_concurrency_limit_by_name(LIMIT_NAME)
    assert (limit.limit, limit.active) == (1, True)


async def test_a_holder_that_has_not_recorded_itself_yet_keeps_its_slot(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    """Under load a new holder's record lags behind its taking the slot: the next
    cleanup must find the slot busy, not left behind, or two would run at once."""
    from datetime import UTC, datetime

    from flows.lock import Holder, holder_variable

    async with PrefectClient(server.api_url) as client:
        await client.create_flow_from_name(flow_name)
        await ensure_limit(client)
        await client.update_global_concurrency_limit(
            LIMIT_NAME, GlobalConcurrencyLimitUpdate(active_slots=1)
        )

    async def record_late() -> None:  # the live holder's record, seconds after its slot
        await asyncio.sleep(6)
        now = datetime.now(UTC)
        async with PrefectClient(server.api_url) as client:
            await client.create_variable(
                VariableCreate(
                    name=holder_variable(LIMIT_NAME),
                    value=Holder(acquired_at=now, renewed_at=now).model_dump(mode="json"),
                )
            )

    try:
        report, _ = await asyncio.gather(
            run_cleanup(flows=[flow_name], approval="none"), record_late()
        )
    finally:
        release_slot(server.api_url)

    assert report.outcome is CleanupOutcome.SKIPPED


async def test_a_config_naming_an_unknown_flow_fails_with_the_fix_and_an_event(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    async with PrefectClient(server.api_url) as client:
        await client.create_flow_from_name(flow_name)

    with pytest.raises(ScopeError, match=r"did you mean '" + flow_name) as caught:
        await run_cleanup(flows=[flow_name + "x"], approval="none")

    assert "fix the 'flows' parameter" in str(caught.value)
    async with PrefectClient(server.api_url) as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["database-cleanup"])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    events = await events_of(server.api_url, runs[0].id, "janitor.cleanup.failed")
    assert names(events) == ["janitor.cleanup.failed"]
    assert "ScopeError" in events[0]["payload"]["error"]
