"""A scripted pydantic-ai model in the AI reviewer, run as the cleanup flow runs it.

``FunctionModel`` scripts stand in for the LLM; the agent, its read-only
Prefect MCP tools (a real prefect-mcp-server against the test's server) and the
verdict rules are the shipped ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prefect import flow
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from flows.cleanup.brief import NOTE
from flows.cleanup.config import AISettings
from flows.cleanup.reviewer import Review, review_cleanup
from helpers.cleanup import drain_services

BRIEF = """\
## Cleanup preview
Cutoff: runs that ended before 2026-10-01. 3 runs: COMPLETED 3. Flow `janitor-review-test`.
"""

T = TypeVar("T")
Script = Callable[[list[ModelMessage], AgentInfo], Any]


@flow(name="janitor-review-test")
def placeholder() -> None:
    """Never runs: create_flow_run only needs a flow to file the run under."""


def answer(info: AgentInfo, **decision: Any) -> ModelResponse:
    """The model's final answer, through the output tool pydantic-ai offers it."""
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, decision)])


def call(tool: str, **args: Any) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart(tool, args)])


def parts_of(messages: list[ModelMessage], kind: type[T]) -> list[T]:
    return [part for message in messages for part in message.parts if isinstance(part, kind)]


def content(part: ToolReturnPart) -> dict[str, Any]:
    """A prefect-mcp-server tool's result (a JSON object), as fenced for the model."""
    assert isinstance(part.content, dict)
    assert part.content["note"] == NOTE
    data = part.content["untrusted_data"]
    assert isinstance(data, dict)
    return data


def decides(**decision: Any) -> Script:
    """A model that answers at once, without looking at anything."""
    return lambda _messages, info: answer(info, **decision)


async def review(
    api_url: str,
    script: Script | str | None,
    settings: AISettings | None = None,
    brief: str = BRIEF,
    **options: Any,
) -> tuple[Review, str]:
    """``review_cleanup`` inside a flow, as the cleanup flow calls it; also its flow run id."""
    model = FunctionModel(script) if callable(script) else script

    @flow(name="reviewer-test")
    async def reviewing() -> tuple[Review, str]:
        context = FlowRunContext.get()
        assert context is not None
        assert context.flow_run is not None
        ai = settings or AISettings()
        result = await review_cleanup(brief, ai, api_url=api_url, model=model, **options)
        return result, str(context.flow_run.id)

    await drain_services()
    try:
        with temporary_settings({PREFECT_API_URL: api_url}):
            return await reviewing()
    finally:
        await drain_services()
