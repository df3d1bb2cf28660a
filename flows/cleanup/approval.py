"""Who said yes: the human form, answering it from outside the run, and the verdict.

A waiting cleanup is a paused ``database-cleanup`` run. The Prefect UI, the
Slack app and ``scripts/approve.py`` all answer it the same way: the form
below, given to Prefect's resume endpoint, after the same checks.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import FlowPauseTimeout, ObjectNotFound
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field

from flows.errors import AnswerRefused

CLEANUP_FLOW = "database-cleanup"
POLL_SECONDS = 3  # how soon a paused cleanup notices an answer from the UI or Slack


class ApprovalForm(RunInput):
    """The form shown in the Prefect UI (and filled by the Slack button) when a cleanup waits."""

    approve: bool = Field(False, description="Tick to delete the runs described above.")
    notes: str = Field("", description="Why; shown in Slack and kept in the cleanup's events.")
    approver: str = Field("", description="Who is answering (name or handle).")


class Verdict(BaseModel):
    """How an approval ended; the payload of the ``janitor.approval.*`` events."""

    approved: bool = Field(description="Whether the deletion may go ahead.")
    via: Literal["human", "ai", "none", "dry-run"] = Field(description="Who decided.")
    approver: str = Field("", description="The person or model that answered.")
    notes: str = Field("", description="The approver's notes.")
    timed_out: bool = Field(False, description="No answer came within the timeout.")
    confidence: float | None = Field(None, description="The AI reviewer's confidence.")
    reasoning: str = Field("", description="The AI reviewer's reasoning.")
    concerns: list[str] = Field(default_factory=list, description="The AI reviewer's concerns.")
    error: str = Field("", description="Why the AI review failed, when it did (fails closed).")
    approved_count: int = Field(0, description="How many runs were approved for deletion.")


async def ask_human(description: str, timeout_seconds: int, approved_count: int) -> Verdict:
    """Pause the cleanup until someone answers the form; silence counts as "no"."""
    form = ApprovalForm.with_initial_data(description=description, approve=False)
    try:
        answer = await apause_flow_run(
            wait_for_input=form,
            timeout=timeout_seconds,
            poll_interval=min(POLL_SECONDS, max(1, timeout_seconds // 2)),
        )
    except FlowPauseTimeout:
        return Verdict(approved=False, via="human", timed_out=True)
    return Verdict(
        approved=bool(answer.approve),
        via="human",
        approver=answer.approver,
        notes=answer.notes,
        approved_count=approved_count if answer.approve else 0,
    )


async def waiting(client: PrefectClient, limit: int = 50) -> list[FlowRun]:
    """The cleanups waiting for an answer (paused), oldest first."""
    return await client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[CLEANUP_FLOW])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
        ),
        sort=FlowRunSort.START_TIME_ASC,
        limit=limit,
    )


async def answer(client: PrefectClient, run_id: UUID, form: ApprovalForm) -> FlowRun:
    """Resume the waiting cleanup ``run_id`` with ``form``, as the UI's form does.

    Checked first, so a wrong id or a second answer changes nothing: the run
    must exist, be a ``database-cleanup`` run, and be paused.
    """
    try:
        run = await client.read_flow_run(run_id)
        flow = await client.read_flow(run.flow_id)
    except ObjectNotFound:
        raise AnswerRefused(f"flow run {run_id} does not exist") from None
    if flow.name != CLEANUP_FLOW:
        raise AnswerRefused(
            f"flow run {run.id} belongs to {flow.name!r}, not {CLEANUP_FLOW}", forbidden=True
        )
    if run.state is None or run.state.type != StateType.PAUSED:
        state = run.state.name if run.state else "no state"
        raise AnswerRefused(f"flow run {run.id} is not paused ({state}); nothing to decide")
    result = await client.resume_flow_run(run.id, run_input=form.model_dump(mode="json"))
    if result.status != SetStateStatus.ACCEPT:
        why = getattr(result.details, "reason", None) or result.status.value
        raise AnswerRefused(f"Prefect did not resume flow run {run.id}: {why}")
    return run
