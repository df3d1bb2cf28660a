"""Slack at every step: the shipped notification automations, synced to a real server,
posting to a Slack stand-in while the real cleanup flow runs each path.

Messages are put in the order of the events that made them (each message names its
event in a block_id). The cleanup spaces its notified steps so they also arrive in
order, but under load the server may still reorder them; these tests do not rely on it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from prefect.client.orchestration import PrefectClient
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy.ext.asyncio import create_async_engine

import flows.cleanup.reviewer as reviewer
from flows.cleanup.config import AISettings
from flows.cleanup.deletion import DeletionFailed
from flows.cleanup.flow import CleanupOutcome
from flows.devstack.console import SlackConsole
from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history
from helpers.cleanup import RunCleanup, paused_cleanups, surviving
from helpers.servers import wait_for_events
from triggers.load.bundle import load_bundle
from triggers.sync import Mode, sync_automations

pytestmark = pytest.mark.anyio

from helpers import AUTOMATIONS  # noqa: E402

STEPS_TAG = "cleanup-steps"  # the shipped automations that post the cleanup's steps
OLD = timedelta(days=40)
DELETION_STEPS = [
    "janitor.approval.granted",
    "janitor.deletion.started",
    "janitor.deletion.completed",
]
QUIET_SECONDS = 2.0  # after the last expected message, how long nothing more may come


@pytest.fixture
def path() -> str:
    """The database path, so a refused delete fails in the database itself."""
    return "database"


@pytest.fixture
async def slack(api_url: str) -> AsyncIterator[SlackConsole]:
    """A Slack stand-in, and the shipped notification automations synced to post to it."""
    from pathlib import Path

    console = SlackConsole(sink=lambda _line: None).start()
    environ = {**os.environ, "SLACK_WEBHOOK_URL": console.url}
    steps = load_bundle(Path(AUTOMATIONS), environ=environ).tagged(STEPS_TAG)
    outcome = await sync_automations(
        Path(AUTOMATIONS), api_url=api_url, mode=Mode.APPLY, only=steps, environ=environ
    )
    assert outcome.error is None, outcome.error
    try:
        yield console
    finally:
        await _remove_automations(api_url)
        console.stop()


async def _remove_automations(api_url: str) -> None:
    """So later tests' cleanups do not post to a stand-in that has gone."""
    transport = httpx.AsyncHTTPTransport(retries=3)  # a busy SQLite server may drop one
    async with httpx.AsyncClient(base_url=api_url, timeout=30, transport=transport) as client:
        for automation in (await client.post("/automations/filter", json={})).json():
            if STEPS_TAG in automation["tags"]:
                await client.delete(f"/automations/{automation['id']}")


async def messages(
    slack: SlackConsole, api_url: str, flow_run_id: UUID, count: int
) -> list[tuple[str, dict[str, Any]]]:
    """Exactly ``count`` messages, as (event name, message), in the order of their events."""
    deadline = time.monotonic() + 30
    while len(slack.received) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(QUIET_SECONDS)
    tagged = [(_event_id(message), message) for message in slack.received]
    wanted = {event_id for event_id, _ in tagged}
    # The automation can fire before the event persister has written the event.
    events = await wait_for_events(
        api_url,
        {"any_resource": {"id": [f"janitor.cleanup.{flow_run_id}"]}},
        lambda found: wanted <= {event["id"] for event in found},
        timeout=30,
    )
    order = {event["id"]: index for index, event in enumerate(events)}
    name = {event["id"]: event["event"] for event in events}
    unknown = [message["text"] for event_id, message in tagged if event_id not in order]
    assert not unknown, f"messages from no event of this cleanup: {unknown}"
    tagged.sort(key=lambda pair: order[pair[0]])
    found = [(name[event_id], message) for event_id, message in tagged]
    assert len(found) == count, [step for step, _ in found]
    return found


def _event_id(message: dict[str, Any]) -> str:
    (block_id,) = [
        block["block_id"]
        for block in message["blocks"]
        if block.get("block_id", "").startswith("janitor-event-")
    ]
    return str(block_id.removeprefix("janitor-event-"))


def text_of(message: dict[str, Any]) -> str:
    """Every text of a message, for assertions on what a person reads."""
    parts = [message["text"]]
    for block in message["blocks"]:
        for item in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])
    return "\n".join(parts)


def buttons(message: dict[str, Any]) -> dict[str, str]:
    return {
        element["action_id"]: element.get("value") or element.get("url", "")
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    }


async def answer(api_url: str, flow_run_id: UUID, **form: object) -> None:
    """Resume the paused cleanup as the Prefect UI form does."""
    async with PrefectClient(api_url) as client:
        result = await client.resume_flow_run(flow_run_id, run_input=dict(form))
    assert result.status.value == "ACCEPT", result


def steps(found: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [step for step, _ in found]


async def test_a_person_approves(
    server: LocalServer, slack: SlackConsole, run_cleanup: RunCleanup, flow_name: str
) -> None:
    await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)] * 3)
    running = asyncio.create_task(run_cleanup(flows=[flow_name], approval="human"))
    (paused,) = await paused_cleanups(server.api_url)
    # The request reaches Slack while the run waits: a person can act on it.
    first = await messages(slack, server.api_url, paused, 1)
    (_, request) = first[0]
    assert buttons(request)["janitor-approve"] == str(paused)
    assert buttons(request)["janitor-reject"] == str(paused)
    assert "Delete 3 flow runs" in text_of(request)
    assert f"{flow_name}: 3" in text_of(request)
    assert "Archive: every deleted row goes first to" in text_of(request)

    await answer(server.api_url, paused, approve=True, notes="old & <b>done</b>", approver="alice")
    report = await running

    assert report.outcome is CleanupOutcome.DELETED
    found = await messages(slack, server.api_url, paused, 4)
    assert steps(found) == ["janitor.approval.requested", *DELETION_STEPS]
    granted = text_of(found[1][1])
    assert "Approved* by alice" in granted
    assert "old &amp; &lt;b&gt;done&lt;/b&gt;" in granted  # escaped, never markup
    assert "Deleted 3 flow runs" in text_of(found[3][1])
    assert "Archived first to" in text_of(found[3][1])


async def test_a_person_rejects(
    server: LocalServer, slack: SlackConsole, run_cleanup: RunCleanup, flow_name: str
) -> None:
    await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    running = asyncio.create_task(run_cleanup(flows=[flow_name], approval="human"))
    (paused,) = await paused_cleanups(server.api_url)
    await answer(server.api_url, paused, approve=False, notes="<!channel> not yet", approver="bo")

    assert (await running).outcome is CleanupOutcome.REJECTED
    found = await messages(slack, server.api_url, paused, 2)
    assert steps(found) == ["janitor.approval.requested", "janitor.approval.rejected"]
    rejected = text_of(found[1][1])
    assert "Rejected* by bo" in rejected
    assert "&lt;!channel&gt; not yet" in rejected
    assert "<!channel>" not in rejected


async def test_nobody_answers(
    server: LocalServer, slack: SlackConsole, run_cleanup: RunCleanup, flow_name: str
) -> None:
    await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    report = await run_cleanup(flows=[flow_name], approval="human", approval_timeout_seconds=5)

    assert report.outcome is CleanupOutcome.TIMED_OUT
    assert report.flow_run_id is not None
    found = await messages(slack, server.api_url, report.flow_run_id, 2)
    assert steps(found) == ["janitor.approval.requested", "janitor.approval.timed-out"]
    assert "Nobody answered" in text_of(found[1][1])
    assert "within 5.0 s" in text_of(found[0][1])


def reviewing(confidence: float) -> Callable[[list[ModelMessage], AgentInfo], ModelResponse]:
    """A scripted model that looks at the server through the real MCP tools, then approves."""

    def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        looked = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
        if not looked:
            return ModelResponse(parts=[ToolCallPart("get_flow_runs", {"limit": 5})])
        decision = {
            "approved": True,
            "confidence": confidence,
            "reasoning": "All runs ended > 30 days ago & none is tagged <keep>.",
            "concerns": ["a `billing` run failed"],
        }
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, decision)])

    return script


@asynccontextmanager
async def ai_model(monkeypatch: pytest.MonkeyPatch, confidence: float) -> AsyncIterator[None]:
    """The cleanup's AI reviewer, driven by a FunctionModel instead of a paid API."""
    model = FunctionModel(reviewing(confidence))
    monkeypatch.setattr(
        reviewer, "review_cleanup", functools.partial(reviewer.review_cleanup, model=model)
    )
    yield


async def test_the_ai_approves(
    server: LocalServer,
    slack: SlackConsole,
    run_cleanup: RunCleanup,
    flow_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)] * 2)
    async with ai_model(monkeypatch, confidence=0.93):
        report = await run_cleanup(flows=[flow_name], approval="ai")

    assert report.outcome is CleanupOutcome.DELETED
    assert report.flow_run_id is not None
    found = await messages(slack, server.api_url, report.flow_run_id, 4)
    assert steps(found) == ["janitor.approval.requested", *DELETION_STEPS]
    assert "AI reviewer" in text_of(found[0][1])
    assert "janitor-approve" not in buttons(found[0][1])  # nobody is asked to click
    granted = text_of(found[1][1])
    assert "*Confidence:* 93%" in granted
    assert "&gt; 30 days ago &amp; none is tagged &lt;keep&gt;" in granted
    assert "a `billing` run failed" in granted


async def test_an_unsure_ai_hands_over_to_a_person(
    server: LocalServer,
    slack: SlackConsole,
    run_cleanup: RunCleanup,
    flow_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    settings = AISettings(min_confidence=0.8, on_low_confidence="human")
    async with ai_model(monkeypatch, confidence=0.55):
        running = asyncio.create_task(run_cleanup(flows=[flow_name], approval="ai", ai=settings))
        (paused,) = await paused_cleanups(server.api_url)
        await messages(slack, server.api_url, paused, 2)
        await answer(server.api_url, paused, approve=True, approver="carol")
        report = await running

    assert report.outcome is CleanupOutcome.DELETED
    found = await messages(slack, server.api_url, paused, 5)
    assert steps(found) == [
        "janitor.approval.requested",
        "janitor.approval.requested",
        *DELETION_STEPS,
    ]
    handover = text_of(found[1][1])
    assert "it would approve with confidence 55%, below the 80%" in handover
    assert set(buttons(found[1][1])) >= {"janitor-approve", "janitor-reject"}
    assert "Approved* by carol" in text_of(found[2][1])


@asynccontextmanager
async def deletes_refused(server: LocalServer) -> AsyncIterator[None]:
    """The database refuses every flow-run delete: a real failure, in the database."""
    engine = create_async_engine(server.database_url)
    if engine.dialect.name == "sqlite":
        create = [
            "CREATE TRIGGER janitor_refuse BEFORE DELETE ON flow_run "
            "BEGIN SELECT RAISE(ABORT, 'deletes refused by the test'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS janitor_refuse"]
    else:
        create = [
            "CREATE OR REPLACE FUNCTION janitor_refuse() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'deletes refused by the test'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER janitor_refuse BEFORE DELETE ON flow_run "
            "FOR EACH ROW EXECUTE FUNCTION janitor_refuse()",
        ]
        drop = ["DROP TRIGGER IF EXISTS janitor_refuse ON flow_run"]
    try:
        async with engine.begin() as connection:
            for statement in create:
                await connection.execute(sa.text(statement))
        yield
    finally:
        async with engine.begin() as connection:
            for statement in drop:
                await connection.execute(sa.text(statement))
        await engine.dispose()


async def test_a_deletion_that_fails(
    server: LocalServer, slack: SlackConsole, run_cleanup: RunCleanup, flow_name: str
) -> None:
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    async with deletes_refused(server):
        with pytest.raises(DeletionFailed):
            await run_cleanup(flows=[flow_name], approval="none")

    assert await surviving(server.api_url, ids) == set(ids)
    async with PrefectClient(server.api_url) as client:
        cleanup_id = await _latest_cleanup(client)
    found = await messages(slack, server.api_url, cleanup_id, 3)
    assert steps(found) == [
        "janitor.approval.granted",
        "janitor.deletion.started",
        "janitor.deletion.failed",
    ]
    failed = text_of(found[2][1])
    assert "deletes refused by the test" in failed
    assert "after 0 flow runs of 1 approved" in failed


async def _latest_cleanup(client: PrefectClient) -> UUID:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    (run,) = await client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["database-cleanup"])),
        sort=FlowRunSort.START_TIME_DESC,
        limit=1,
    )
    return run.id


async def test_nothing_to_do(
    server: LocalServer, slack: SlackConsole, run_cleanup: RunCleanup, flow_name: str
) -> None:
    await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD / 40)])
    report = await run_cleanup(flows=[flow_name], approval="human")

    assert report.outcome is CleanupOutcome.NOTHING_TO_DO
    assert report.flow_run_id is not None
    found = await messages(slack, server.api_url, report.flow_run_id, 1)
    assert steps(found) == ["janitor.cleanup.nothing-to-do"]
    assert "Nothing to clean" in text_of(found[0][1])
