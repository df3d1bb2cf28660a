"""Approve or reject from Slack, end to end: signed clicks against a really paused cleanup.

The app runs in real uvicorn on a loopback port (in a thread, as it would in its
own process), the Prefect servers are the session's real ones, and Slack's
response_url is a SlackConsole that records what the app posts.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn
from prefect.client.orchestration import PrefectClient
from starlette.applications import Starlette

from flows.cleanup.flow import CleanupOutcome, CleanupReport
from flows.devstack.console import SlackConsole
from flows.devstack.processes import free_port
from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history
from flows.slack.app import (
    APPROVE,
    OPEN,
    PENDING,
    REJECT,
    Click,
    SlackAppSettings,
    create_app,
    decided_message,
    post_decision,
)
from helpers.cleanup import RunCleanup, paused_cleanups, surviving
from helpers.proxy import Rule, fault_proxy
from helpers.slack import ALICE, BOB, MALLORY, SECRET, approval_blocks, click, form, signed

pytestmark = pytest.mark.anyio

OLD = timedelta(days=40)
UNSIGNED = {"Content-Type": "application/x-www-form-urlencoded"}
DECIDED = re.compile(
    r"^(:white_check_mark: Approved|:x: Rejected) in Slack by .+ at \d\d:\d\d UTC$"
)


@pytest.fixture
def path() -> str:
    """Slack approval does not depend on the deletion path; the API path is enough here."""
    return "api"


@pytest.fixture
def slack() -> Iterator[SlackConsole]:
    console = SlackConsole(sink=lambda _: None).start()
    yield console
    console.stop()


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Real uvicorn on a socket bound before it starts (no port race), in its own thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def app_url(server: LocalServer) -> Iterator[str]:
    settings = SlackAppSettings(
        signing_secret=SECRET, approvers=frozenset({ALICE, BOB}), api_url=server.api_url
    )
    with serving(create_app(settings)) as url:
        yield url


async def post(app_url: str, body: bytes, headers: dict[str, str]) -> tuple[httpx.Response, float]:
    async with httpx.AsyncClient(base_url=app_url, timeout=10) as http:
        started = time.monotonic()
        response = await http.post("/slack/actions", content=body, headers=headers)
        return response, time.monotonic() - started


async def messages(console: SlackConsole, count: int, timeout: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(console.received) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return list(console.received)


async def state_of(api_url: str, run_id: UUID) -> str:
    async with PrefectClient(api_url) as client:
        run = await client.read_flow_run(run_id)
    assert run.state is not None
    return run.state.type.value


@asynccontextmanager
async def waiting_cleanup(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> AsyncIterator[tuple[UUID, asyncio.Task[CleanupReport]]]:
    """A cleanup paused for approval; rejected through the API if a test leaves it waiting,
    so a failure here cannot leave a paused cleanup behind for the next test."""
    running = asyncio.create_task(run_cleanup(flows=[flow_name], approval="human"))
    (paused,) = await paused_cleanups(server.api_url)
    try:
        yield paused, running
    finally:
        if not running.done():
            async with PrefectClient(server.api_url) as client:
                await client.resume_flow_run(paused, run_input={"approve": False})
            await running


async def test_an_approve_click_resumes_the_cleanup_which_deletes(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str, slack: SlackConsole, app_url: str
) -> None:
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)] * 3)
    async with waiting_cleanup(server, run_cleanup, flow_name) as (paused, running):
        body = form(click(APPROVE, paused, slack.url))
        headers = signed(body)
        response, seconds = await post(app_url, body, headers)
        # A busy server may take longer than Slack waits: then the answer says the
        # decision is on its way, and the message below is its report.
        assert (response.status_code, response.text in ("approved", PENDING)) == (200, True)
        assert seconds < 3, f"Slack gives up after 3 s; the app took {seconds:.2f} s"
        report = await running

    assert report.outcome is CleanupOutcome.DELETED
    assert report.verdict is not None
    assert report.verdict.approver == f"alice (Slack {ALICE})"
    assert report.verdict.notes == "approved in Slack by alice"
    assert await surviving(server.api_url, ids) == set()

    (message,) = await messages(slack, 1)
    assert message["replace_original"] is True
    blocks = message["blocks"]
    assert [block.get("block_id") for block in blocks] == ["summary", "janitor-decision", None]
    assert blocks[0] == approval_blocks(paused)[0]
    assert blocks[2] == approval_blocks(paused)[2]
    decision = blocks[1]["elements"][0]["text"]
    assert DECIDED.match(decision), decision
    assert message["text"] in decision

    replay, _ = await post(app_url, body, headers)
    assert (replay.status_code, "replayed" in replay.text) == (401, True), replay.text
    fresh = form(click(REJECT, paused, slack.url))
    late, _ = await post(app_url, fresh, signed(fresh))
    assert (late.status_code, "is not paused" in late.text) == (400, True), late.text
    await asyncio.sleep(0.3)
    assert len(slack.received) == 1, "a refused click must not touch the message"


async def test_refused_clicks_change_nothing_then_a_reject_ends_the_cleanup(
    server: LocalServer,
    run_cleanup: RunCleanup,
    flow_name: str,
    slack: SlackConsole,
    app_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)] * 2)
    other, finished = await make_history(
        server.api_url,
        server.database_url,
        [RunSpec(f"not-a-cleanup-{flow_name}", state="Paused"), RunSpec("database-cleanup")],
    )
    try:
        async with waiting_cleanup(server, run_cleanup, flow_name) as (paused, running):
            await _every_refusal(app_url, slack.url, paused, other, finished, caplog)

            assert await state_of(server.api_url, paused) == "PAUSED"
            assert await state_of(server.api_url, other) == "PAUSED"
            assert slack.received == []

            body = form(click(REJECT, paused, slack.url, user=BOB, username="b<o>b & co"))
            response, seconds = await post(app_url, body, signed(body))
            assert (response.status_code, response.text in ("rejected", PENDING)) == (200, True)
            assert seconds < 3, f"Slack gives up after 3 s; the app took {seconds:.2f} s"
            report = await running
    finally:
        async with PrefectClient(server.api_url) as client:
            for run_id in (other, finished):
                await client.delete_flow_run(run_id)

    assert report.outcome is CleanupOutcome.REJECTED
    assert report.verdict is not None
    assert report.verdict.approver == f"b<o>b & co (Slack {BOB})"
    assert await surviving(server.api_url, ids) == set(ids)
    (message,) = await messages(slack, 1)
    decision = message["blocks"][1]["elements"][0]["text"]
    assert decision.startswith(":x: Rejected in Slack by b&lt;o&gt;b &amp; co at "), decision


async def _every_refusal(
    app_url: str,
    response_url: str,
    paused: UUID,
    other: UUID,
    finished: UUID,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each bad request gets its status and reason, and is logged (without the secret)."""
    good = form(click(REJECT, paused, response_url))
    opened = form(click(OPEN, paused, response_url))
    opened_headers = signed(opened)
    no_user = click(REJECT, paused, response_url)
    del no_user["user"]
    cases: list[tuple[str, bytes, dict[str, str] | None, int, str]] = [
        ("forged", good, signed(good, secret="not-the-secret"), 401, "bad signature"),
        ("unsigned", good, UNSIGNED, 401, "missing"),
        ("stale", good, signed(good, age=301), 401, "stale"),
        ("from the future", good, signed(good, age=-400), 401, "stale"),
        ("other body", form(click(APPROVE, paused, response_url)), signed(good), 401, "bad sig"),
        ("no payload", b"token=x", None, 400, "no 'payload'"),
        ("not JSON", form("{approve: yes"), None, 400, "not JSON"),
        ("not a click", form({"type": "view_submission"}), None, 400, "not a block_actions"),
        ("no actions", form(click(REJECT, paused, response_url, actions=[])), None, 400, "no act"),
        ("unknown action", form(click("janitor-delete-all", paused, response_url)), None, 400,
         "unknown action_id"),
        ("not a run id", form(click(APPROVE, "12", response_url)), None, 400, "not a flow run id"),
        ("no user", form(no_user), None, 400, "no user id"),
        ("no response_url", form(click(APPROVE, paused, "")), None, 400, "no response_url"),
        ("not an approver", form(click(APPROVE, paused, response_url, user=MALLORY)), None, 403,
         "not in JANITOR_SLACK_APPROVERS"),
        ("no such run", form(click(APPROVE, uuid.uuid4(), response_url)), None, 400, "not exist"),
        ("another flow", form(click(APPROVE, other, response_url)), None, 403, "not-a-cleanup-"),
        ("not paused", form(click(APPROVE, finished, response_url)), None, 400, "is not paused"),
        ("the UI link", opened, opened_headers, 200, "nothing to do"),
        ("replayed", opened, opened_headers, 401, "replayed"),
    ]  # fmt: skip
    for name, body, headers, status, reason in cases:  # headers None: signed as Slack would
        response, seconds = await post(app_url, body, signed(body) if headers is None else headers)
        assert (response.status_code, reason in response.text) == (status, True), (
            name,
            response.text,
        )
        assert seconds < 3, (name, seconds)
    refusals = [r.getMessage() for r in caplog.records if r.name == "prefect.janitor.slack"]
    assert len([line for line in refusals if line.startswith("refused")]) == len(cases) - 1
    assert not any(SECRET in record.getMessage() for record in caplog.records)


async def test_a_slow_prefect_server_gets_an_answer_in_time_and_the_decision_later(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str, slack: SlackConsole
) -> None:
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    with fault_proxy(server.api_url) as proxy:
        proxy.add(Rule(r"^POST /flow_runs/[^/]+/resume$", "delay", seconds=3))
        settings = SlackAppSettings(
            signing_secret=SECRET, approvers=frozenset({ALICE}), api_url=proxy.api_url
        )
        with serving(create_app(settings)) as slow_app:
            async with waiting_cleanup(server, run_cleanup, flow_name) as (paused, running):
                body = form(click(REJECT, paused, slack.url))
                response, seconds = await post(slow_app, body, signed(body))
                assert (response.status_code, response.text) == (200, PENDING)
                assert seconds < 3, f"Slack gives up after 3 s; the app took {seconds:.2f} s"
                (message,) = await messages(slack, 1)
                report = await running

    assert report.outcome is CleanupOutcome.REJECTED
    assert await surviving(server.api_url, ids) == set(ids)
    assert message["replace_original"] is True
    assert message["text"].startswith("Rejected in Slack by "), message["text"]


async def test_a_stalled_prefect_server_still_gets_slack_an_answer_in_time(
    slack: SlackConsole,
) -> None:
    with socket.socket() as stalled:  # accepts connections, never answers
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(8)
        api_url = f"http://127.0.0.1:{stalled.getsockname()[1]}/api"
        settings = SlackAppSettings(
            signing_secret=SECRET,
            approvers=frozenset({ALICE}),
            api_url=api_url,
            decision_timeout_seconds=3,
        )
        with serving(create_app(settings)) as app_url:
            body = form(click(APPROVE, uuid.uuid4(), slack.url))
            response, seconds = await post(app_url, body, signed(body))
            (note,) = await messages(slack, 1)

    assert (response.status_code, response.text) == (200, PENDING)
    assert seconds < 3, f"Slack gives up after 3 s; the app took {seconds:.2f} s"
    assert note == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": ":warning: Could not approve this cleanup: "
        "Prefect did not answer within 3 s; check the run, then retry",
    }


def test_the_decision_replaces_only_the_buttons_and_escapes_the_name() -> None:
    run_id = uuid.uuid4()
    at = datetime(2026, 11, 3, 14, 3, 59, tzinfo=UTC)
    approved = Click(True, run_id, ALICE, "<!channel> & co", "https://x", approval_blocks(run_id))

    message = decided_message(approved, at)

    line = "Approved in Slack by &lt;!channel&gt; &amp; co at 14:03 UTC"
    assert message["text"] == line
    assert message["blocks"][1]["elements"] == [
        {"type": "mrkdwn", "text": f":white_check_mark: {line}"}
    ]
    original = approval_blocks(run_id)
    assert message["blocks"][0::2] == original[0::2]
    without_buttons = Click(False, run_id, BOB, "bob", "https://x", [original[0]])
    blocks = decided_message(without_buttons, at)["blocks"]
    assert blocks[-1]["elements"][0]["text"] == ":x: Rejected in Slack by bob at 14:03 UTC"


async def test_a_failed_message_update_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/slack"
    decided = Click(True, uuid.uuid4(), ALICE, "alice", dead, [])

    with caplog.at_level(logging.WARNING):
        await post_decision(decided, datetime.now(UTC))

    assert any("could not update the Slack message" in r.getMessage() for r in caplog.records)
