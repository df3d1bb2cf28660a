"""AI approval for a database cleanup: an agent with read-only Prefect tools says yes or no.

The cleanup flow builds a brief (what would be deleted) and calls ``review_cleanup`` inside
its ``@flow``. The agent checks the brief against the live server through prefect-mcp-server
(a subprocess on stdio, one per review) restricted to an allow-list of read-only tools, and
answers with a ``CleanupDecision``. ``PrefectDurability`` runs every model request and MCP
call as a Prefect task of the calling flow run: retried, time-limited, visible in the UI.

The review fails closed: whatever goes wrong with the agent (no API key, unknown provider,
model unreachable, MCP server not starting, timeout, output that never validates) becomes a
rejection, or an escalation to a human when ``on_low_confidence`` is ``"human"``, with the
reason in ``Review.error``. No model is built at import time, so importing needs no API key.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any, Literal

from prefect.states import State
from pydantic import BaseModel, Field
from pydantic_ai import Agent, UsageLimits
from pydantic_ai.exceptions import (
    ModelConnectionError,
    ModelRateLimitError,
    ModelRequestTimeout,
    ModelServerError,
    ModelUnavailableError,
    RunTimedOut,
)
from pydantic_ai.models import Model
from pydantic_ai.toolsets import AbstractToolset

from flows.cleanup.brief import RULES, fenced, question
from flows.cleanup.config import AISettings

#: The only MCP tools the agent may see or call. The server can also offer docs-proxy tools
#: and experimental execution-plan tools, one of which writes; a tool the server gains later
#: stays hidden until it is added here.
READ_ONLY_TOOLS = frozenset(
    {
        "orientation",
        "get_identity",
        "get_dashboard",
        "get_deployments",
        "get_flows",
        "get_flow_runs",
        "get_flow_run_logs",
        "get_task_runs",
        "get_work_pools",
        "read_events",
        "get_automations",
        "get_object_schema",
    }
)

#: Passed on to the MCP server besides what the MCP SDK always keeps (PATH, HOME, USER...):
#: where Prefect keeps its files and how to authenticate to the API. Nothing else leaks in.
_PASSED_ENV = (
    "PREFECT_HOME",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_API_SSL_CERT_FILE",
    "PREFECT_API_TLS_INSECURE_SKIP_VERIFY",
    "SSL_CERT_FILE",
)

#: Model errors worth another try after a pause; a bad key or request fails the same way again.
_TRANSIENT = (
    ModelRateLimitError,
    ModelUnavailableError,
    ModelServerError,
    ModelConnectionError,
    ModelRequestTimeout,
)

ReviewAnswer = Literal["approved", "rejected", "escalate"]

SYSTEM_PROMPT = """\
You review a proposed deletion of old flow runs from a self-hosted Prefect server; the \
deletion keeps its database small. The user message is the preview: the cutoff, counts by \
state, flow and deployment, and sample runs. Deleted runs, with their task runs and logs, \
cannot be recovered.

Check the preview against the live server with the read-only Prefect tools before you answer:
- the runs to delete are in terminal states (COMPLETED, FAILED, CANCELLED, CRASHED) and ended \
before the cutoff: look up some of the sample runs;
- nobody still needs them: recent failures of the same flows or deployments that someone may \
be investigating, runs that recent events or automations refer to;
- the scope is plausible: counts in line with the server's history, and no active, important \
deployment losing all of its history.

Approve only when the evidence supports it. Reject, listing your concerns, when deleting \
would likely hurt or the preview does not match the server. Set confidence to how sure you \
are of your decision, and quote in your reasoning what the tools showed.
"""


class CleanupDecision(BaseModel):
    """The agent's answer; the field descriptions are what the model reads."""

    approved: bool = Field(
        description="True to let the cleanup delete the runs in the preview, false to stop it."
    )
    confidence: float = Field(
        ge=0, le=1, description="How sure you are of this decision, from 0 (guess) to 1 (certain)."
    )
    reasoning: str = Field(description="Why, in a few sentences, citing what the tools showed.")
    concerns: list[str] = Field(
        default_factory=list,
        description="Specific risks or doubts, one per item; empty when there are none.",
    )


class Review(BaseModel):
    """What the cleanup flow acts on: the verdict, and why."""

    verdict: ReviewAnswer = Field(
        description="'approved': delete. 'rejected': do not delete. 'escalate': ask a human."
    )
    decision: CleanupDecision | None = Field(
        None, description="The agent's answer; None when the agent failed."
    )
    error: str | None = Field(
        None, description="One line saying why the agent failed; None when it answered."
    )
    model: str = Field(description="The model that reviewed, or was meant to.")


def mcp_server_command() -> str:
    """The prefect-mcp-server of this environment, not whatever comes first on PATH."""
    return str(Path(sys.executable).with_name("prefect-mcp-server"))


def prefect_toolset(api_url: str) -> AbstractToolset[None]:
    """prefect-mcp-server for ``api_url``, showing the agent only ``READ_ONLY_TOOLS``."""
    from fastmcp.client.transports import StdioTransport
    from pydantic_ai.mcp import MCPToolset

    env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
    env["PREFECT_API_URL"] = api_url
    # The server proxies Prefect's docs MCP on the internet: aim it at a closed loopback port
    # so the review talks to nothing but the Prefect API (the proxy fails at once, logged).
    env["PREFECT_DOCS_MCP_URL"] = "http://127.0.0.1:9/mcp"
    env["PREFECT_DOCS_MCP_INIT_TIMEOUT"] = "1"
    # Execution-plan tools (one writes) stay off even when a .env in the cwd turns them on.
    env["PREFECT_MCP_EXPERIMENTAL_EXECUTION_PLANS_ENABLED"] = "false"
    # No banner on stderr, and no update check against PyPI at start.
    env["FASTMCP_SHOW_SERVER_BANNER"] = "false"
    env["FASTMCP_CHECK_FOR_UPDATES"] = "off"
    # keep_alive=False: the subprocess ends with the agent run instead of outliving it.
    transport = StdioTransport(command=mcp_server_command(), args=[], env=env, keep_alive=False)
    server: MCPToolset[None] = MCPToolset(transport, id="prefect", init_timeout=30)
    # Hidden tools are also refused when called: pydantic-ai answers 'Unknown tool name'.
    return server.filtered(lambda _ctx, tool: tool.name in READ_ONLY_TOOLS)


def build_agent(
    model: Model | str, api_url: str, *, timeout: float
) -> Agent[None, CleanupDecision]:
    """A fresh reviewer; built per review, so importing this module builds no model."""
    from pydantic_ai.durable_exec.prefect import PrefectDurability, TaskConfig

    model_task = TaskConfig(
        retries=2,
        retry_delay_seconds=[2, 10],
        retry_condition_fn=_transient,
        timeout_seconds=min(timeout, 120),
    )
    mcp_task = TaskConfig(retries=1, retry_delay_seconds=1, timeout_seconds=min(timeout, 60))
    return Agent(
        model,
        name="cleanup-reviewer",  # prefixes some Prefect task names
        output_type=CleanupDecision,
        instructions=f"{SYSTEM_PROMPT}\n{RULES}",
        toolsets=[fenced(prefect_toolset(api_url))],
        retries=2,  # per tool and for the output: a model that keeps erring fails the review
        capabilities=[PrefectDurability(model_task_config=model_task, mcp_task_config=mcp_task)],
    )


async def _transient(task: Any, task_run: Any, state: State) -> bool:
    """Prefect retry condition for model requests: only errors that waiting can fix."""
    error = state.result(raise_on_failure=False)
    if inspect.isawaitable(error):
        error = await error
    return isinstance(error, _TRANSIENT)


async def review_cleanup(
    brief: str,
    settings: AISettings,
    *,
    api_url: str,
    model: Model | str | None = None,
    timeout: float | None = None,
) -> Review:
    """Ask the agent about ``brief``; never raises for a failure of the agent.

    Call it inside a ``@flow``: outside one it still works, but without Prefect tasks.
    ``model`` overrides ``settings.model`` (tests pass a FunctionModel); ``timeout`` overrides
    ``settings.timeout_seconds``, whose lower bound of 10 s is too long for some tests.
    """
    chosen = model if model is not None else settings.model
    name = chosen if isinstance(chosen, str) else chosen.model_id
    limit = float(timeout if timeout is not None else settings.timeout_seconds)
    try:
        agent = build_agent(chosen, api_url, timeout=limit)
        result = await agent.run(
            question(brief), timeout=limit, usage_limits=UsageLimits(request_limit=30)
        )
    except Exception as exc:  # fail closed, whatever broke
        fallback: ReviewAnswer = "escalate" if settings.on_low_confidence == "human" else "rejected"
        return Review(verdict=fallback, error=describe_failure(exc, limit), model=name)
    return Review(verdict=verdict_for(result.output, settings), decision=result.output, model=name)


def verdict_for(decision: CleanupDecision, settings: AISettings) -> ReviewAnswer:
    """Approve only a confident yes; a confident no stays a no; doubt goes where settings say.

    A rejection at or above ``min_confidence`` is the agent's considered answer, so it is
    "rejected" even when a human could be asked: the agent found a reason not to delete, and
    nothing is lost by waiting for the next cleanup. Below ``min_confidence``, whichever way
    the agent leans, it is unsure: "escalate" when ``on_low_confidence`` is "human", else
    "rejected".
    """
    if decision.confidence >= settings.min_confidence:
        return "approved" if decision.approved else "rejected"
    return "escalate" if settings.on_low_confidence == "human" else "rejected"


def describe_failure(exc: BaseException, timeout: float) -> str:
    """One line for the cleanup's report: the innermost error, any secret in it masked."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, RunTimedOut):
        return f"agent did not finish within {timeout:g} s (RunTimedOut)"
    text = " ".join(str(exc).split()) or repr(exc)
    for variable, value in os.environ.items():
        if len(value) >= 8 and re.search(r"KEY|TOKEN|SECRET|PASSWORD|AUTH", variable):
            text = text.replace(value, "***")
    text = re.sub(r"\b(sk-[A-Za-z0-9]{0,4})[A-Za-z0-9_-]{8,}", r"\1***", text)
    if len(text) > 240:
        text = text[:237] + "..."
    return f"{type(exc).__name__}: {text}"
