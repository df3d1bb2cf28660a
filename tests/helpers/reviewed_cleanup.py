"""The database-cleanup flow with a scripted model in its AI reviewer, for served tests.

A served deployment runs each flow run in a new process, which a test cannot
patch; so the end-to-end AI test serves this entrypoint instead, and the flow
run's process imports it. Only the model changes: the agent, its read-only
Prefect MCP tools (a real prefect-mcp-server against the test's server), the
verdict rules and the cleanup flow are the shipped ones.

The script does what the system prompt asks: it reads the first run to go from
the preview, looks it up through ``get_flow_runs``, and approves with high
confidence only when the server shows it in a terminal state; otherwise it
rejects, so a broken tool chain cannot pass as an approval.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

import flows.cleanup.reviewer as reviewer
from flows.cleanup.flow import database_cleanup

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def first_to_go(brief: str) -> str:
    """The first run of the preview's "First runs to go" table."""
    rows = brief.split("| Run | Flow | State | Ended | Tags |", 1)[1].splitlines()
    return rows[2].strip("| ").split(" | ")[0]


def script(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    parts = [part for message in messages for part in message.parts]
    brief = next(str(p.content) for p in parts if isinstance(p, UserPromptPart))
    name = first_to_go(brief)
    returns = [p for p in parts if isinstance(p, ToolReturnPart)]
    if not returns:
        call = ToolCallPart("get_flow_runs", {"filter": {"name": {"any_": [name]}}})
        return ModelResponse(parts=[call])
    content: Any = returns[-1].content  # fenced: the server's data under "untrusted_data"
    data = content.get("untrusted_data") if isinstance(content, dict) else None
    found = data.get("flow_runs", []) if isinstance(data, dict) else []
    states = [run.get("state_type") for run in found]
    decision = {
        "approved": bool(states) and set(states) <= TERMINAL,
        "confidence": 0.95,
        "reasoning": f"get_flow_runs shows {name} as {', '.join(map(str, states)) or 'missing'}",
        "concerns": [],
    }
    return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, decision)])


reviewer.review_cleanup = functools.partial(reviewer.review_cleanup, model=FunctionModel(script))

__all__ = ["database_cleanup"]
