"""The AI reviewer against a real Prefect server and a real prefect-mcp-server, no API key.

Scripted pydantic-ai ``FunctionModel``s stand in for the LLM; what they read from the tools
comes from the live server. Each review starts one MCP server subprocess (about 5 s here), so
the verdict table is checked on ``verdict_for`` and only the paths that need a real run go
through ``review_cleanup``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.states import Completed
from pydantic_ai.exceptions import ModelUnavailableError
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    RetryPromptPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo

import flows.cleanup.reviewer as reviewer
from flows.cleanup.config import AISettings
from flows.cleanup.reviewer import (
    READ_ONLY_TOOLS,
    CleanupDecision,
    verdict_for,
)
from flows.devstack.server import LocalServer
from helpers.scripted_model import (
    answer,
    call,
    content,
    decides,
    parts_of,
    placeholder,
    review,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def sqlite_api_url(sqlite_server: LocalServer) -> str:
    """For paths where the database behind the server makes no difference."""
    return sqlite_server.api_url


async def task_runs(api_url: str, flow_run_id: str, expected: int) -> list[TaskRun]:
    """The flow run's task runs, once the server has recorded them from their events."""
    wanted = FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)]))
    async with PrefectClient(api_url) as client:
        for _ in range(40):
            tasks = await client.read_task_runs(flow_run_filter=wanted)
            done = [t for t in tasks if t.state is not None and t.state.is_final()]
            if len(done) >= expected:
                return tasks
            await asyncio.sleep(0.25)
    return tasks


async def test_agent_reads_the_live_server_and_approves(api_url: str) -> None:
    run_name = f"otter-{uuid.uuid4().hex[:8]}"
    async with PrefectClient(api_url) as client:
        await client.create_flow_run(placeholder, name=run_name, state=Completed())
    seen_tools: list[str] = []

    def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen_tools[:] = sorted(tool.name for tool in info.function_tools)
        returns = parts_of(messages, ToolReturnPart)
        if not returns:
            return call("get_flow_runs", filter={"name": {"any_": [run_name]}})
        (found,) = content(returns[-1])["flow_runs"]
        reasoning = f"{found['name']} is {found['state_type']}"
        return answer(info, approved=True, confidence=0.95, reasoning=reasoning, concerns=[])

    result, flow_run_id = await review(api_url, script)

    assert result.verdict == "approved", result
    assert result.error is None
    assert result.decision is not None
    assert result.decision.reasoning == f"{run_name} is COMPLETED"
    assert result.model == "function:function:script:"
    assert seen_tools == sorted(READ_ONLY_TOOLS)
    # Model requests and the MCP call ran as Prefect tasks of the calling flow run.
    tasks = await task_runs(api_url, flow_run_id, expected=4)
    names = sorted(task.name.rsplit("-", 1)[0] for task in tasks)
    assert names == [
        "Call MCP Tool: get_flow_runs",
        "Get MCP Tools: prefect",
        "Model Request: function:script:",
        "Model Request: function:script:",
        "cleanup-reviewer__run_start_time",
    ]


@pytest.mark.parametrize(
    ("approved", "confidence", "on_low", "expected"),
    [
        (True, 0.8, "reject", "approved"),  # at the threshold is enough
        (True, 0.79, "reject", "rejected"),
        (True, 0.79, "human", "escalate"),
        (False, 0.9, "reject", "rejected"),
        (False, 0.9, "human", "rejected"),  # a confident no is not passed on to a human
        (False, 0.3, "human", "escalate"),  # an unsure no is
        (False, 0.3, "reject", "rejected"),
    ],
)
def test_verdict_rules(approved: bool, confidence: float, on_low: str, expected: str) -> None:
    decision = CleanupDecision(approved=approved, confidence=confidence, reasoning="r", concerns=[])
    settings = AISettings(min_confidence=0.8, on_low_confidence=on_low)
    assert verdict_for(decision, settings) == expected


@pytest.mark.parametrize(("on_low", "expected"), [("reject", "rejected"), ("human", "escalate")])
async def test_unsure_approval_is_not_an_approval(
    sqlite_api_url: str, on_low: str, expected: str
) -> None:
    settings = AISettings(min_confidence=0.8, on_low_confidence=on_low)
    unsure = decides(approved=True, confidence=0.5, reasoning="can't tell", concerns=["?"])
    result, _ = await review(sqlite_api_url, unsure, settings)
    assert result.verdict == expected
    assert result.decision is not None
    assert result.decision.confidence == 0.5
    assert result.error is None


async def test_confident_rejection_is_final(sqlite_api_url: str) -> None:
    settings = AISettings(on_low_confidence="human")
    concerns = ["deployment nightly failed an hour ago"]
    no = decides(approved=False, confidence=0.9, reasoning="being investigated", concerns=concerns)
    result, _ = await review(sqlite_api_url, no, settings)
    assert result.verdict == "rejected"
    assert result.decision is not None
    assert result.decision.concerns == concerns


async def test_a_failing_model_escalates_and_is_not_retried(sqlite_api_url: str) -> None:
    calls: list[int] = []

    def broken(_messages: list[ModelMessage], _info: AgentInfo) -> ModelResponse:
        calls.append(1)
        raise RuntimeError("model exploded\nwith a second line")

    settings = AISettings(on_low_confidence="human")
    result, _ = await review(sqlite_api_url, broken, settings)
    assert result.verdict == "escalate"
    assert result.decision is None
    assert result.error == "RuntimeError: model exploded with a second line"
    assert len(calls) == 1  # not transient: retrying cannot help


async def test_a_transient_model_error_is_retried_by_prefect(sqlite_api_url: str) -> None:
    calls: list[int] = []

    def flaky(_messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls.append(1)
        if len(calls) == 1:
            raise ModelUnavailableError("function:flaky:", "503 service unavailable")
        return answer(info, approved=True, confidence=0.9, reasoning="ok", concerns=[])

    result, _ = await review(sqlite_api_url, flaky)
    assert result.verdict == "approved", result
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("anthropic:claude-sonnet-4-5", "UserError: Set the `ANTHROPIC_API_KEY` environment"),
        ("nosuch:model", "UserError: Unknown model: nosuch:model"),
    ],
)
async def test_a_model_that_cannot_be_built_fails_closed(
    sqlite_api_url: str, monkeypatch: pytest.MonkeyPatch, model: str, reason: str
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    result, _ = await review(sqlite_api_url, None, AISettings(model=model))
    assert result.verdict == "rejected"
    assert result.decision is None
    assert result.model == model
    assert result.error is not None
    assert result.error.startswith(reason), result.error
    assert "\n" not in result.error


async def test_a_slow_model_times_out(sqlite_api_url: str) -> None:
    async def stuck(_messages: list[ModelMessage], _info: AgentInfo) -> ModelResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    started = time.monotonic()
    result, _ = await review(sqlite_api_url, stuck, timeout=8)
    assert time.monotonic() - started < 30
    assert result.verdict == "rejected"
    assert result.error == "agent did not finish within 8 s (RunTimedOut)"


async def test_tool_errors_go_back_to_the_model(
    sqlite_api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hidden tool, arguments out of bounds and a failing lookup all reach the model as
    messages it can act on; the review goes on."""
    monkeypatch.setattr(reviewer, "READ_ONLY_TOOLS", READ_ONLY_TOOLS - {"get_dashboard"})
    steps = [
        call("get_dashboard"),  # on the server, but not on the allow-list
        call("get_flow_runs", limit=1000),  # the tool's schema says at most 200
        call("get_flow_run_logs", flow_run_id="not-a-uuid"),
    ]
    seen: list[ModelMessage] = []

    def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        asked = sum(isinstance(message, ModelResponse) for message in messages)
        if asked < len(steps):
            return steps[asked]
        seen[:] = messages
        return answer(info, approved=False, confidence=0.9, reasoning="tools failed", concerns=[])

    result, _ = await review(sqlite_api_url, script)
    assert result.verdict == "rejected"
    assert result.error is None
    retries = [str(part.content) for part in parts_of(seen, RetryPromptPart)]
    returns = [content(part) for part in parts_of(seen, ToolReturnPart)]
    assert len(retries) == 2, retries
    assert "Unknown tool name: 'get_dashboard'" in retries[0]
    assert "less than or equal to 200" in retries[1]
    # prefect-mcp-server reports a failed lookup as a result, not as a tool error.
    (logs,) = returns
    assert logs["success"] is False
    assert "badly formed hexadecimal UUID string" in logs["error"]


async def test_a_model_that_keeps_getting_it_wrong_fails_closed(sqlite_api_url: str) -> None:
    """Output that never validates (confidence 1.5) uses up the retries."""
    wrong = decides(approved=True, confidence=1.5, reasoning="sure", concerns=[])
    result, _ = await review(sqlite_api_url, wrong)
    assert result.verdict == "rejected"
    assert result.decision is None
    assert result.error == "UnexpectedModelBehavior: Exceeded maximum output retries (2)"


async def test_an_mcp_server_that_does_not_start_fails_closed(
    sqlite_api_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(reviewer, "mcp_server_command", lambda: str(tmp_path / "missing"))
    never = decides(approved=True, confidence=1, reasoning="unreachable", concerns=[])
    result, _ = await review(sqlite_api_url, never, AISettings(on_low_confidence="human"))
    assert result.verdict == "escalate"
    assert result.decision is None
    assert result.error is not None
    assert "No such file or directory" in result.error, result.error


def test_importing_needs_no_api_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    code = "import flows.cleanup.reviewer as r; print(r.CleanupDecision.__name__)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "CleanupDecision"


def test_secrets_do_not_reach_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-verysecretvalue")
    error = RuntimeError("401 for key sk-ant-api03-verysecretvalue")
    assert reviewer.describe_failure(error, 10) == "RuntimeError: 401 for key ***"
