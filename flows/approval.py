"""Who said yes: the human form, and the verdict every approval path ends in."""

from __future__ import annotations

from typing import Literal

from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field

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
