"""Action variants of the spec: Prefect's actions, with names instead of UUIDs.

Every action the OSS server accepts is in ``ActionSpec`` (``declare-incident``
is Cloud only); the two that send a message live in ``notification``. A
reference is a name (``deployment: flow/deployment``), a raw id, or
``source: inferred`` for the object the triggering event is about; sync
resolves names to ids before compiling to Prefect's own action models.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from prefect.client.schemas.objects import StateType
from prefect.events import actions as prefect_actions
from pydantic import Field, model_validator

from triggers.errors import PathKey
from triggers.spec.notification import CallWebhookSpec, SendNotificationSpec
from triggers.spec.resolver import Resolver
from triggers.specmodel import SpecModel
from triggers.units import Duration


class _SimpleAction(SpecModel):
    """Actions with no options: they act on what the triggering event is about."""

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        action_type: str = getattr(self, "type")  # noqa: B009 - every subclass declares it
        return _PREFECT_TYPES[action_type].model_validate({})

    def references(self) -> list[tuple[str, str]]:
        return []


class DoNothingSpec(_SimpleAction):
    """Does nothing; useful while trying out a trigger."""

    type: Literal["do-nothing"] = Field(description="The action variant.")


class CancelFlowRunSpec(_SimpleAction):
    """Cancels the flow run the triggering event is about."""

    type: Literal["cancel-flow-run"] = Field(description="The action variant.")


class DeleteFlowRunSpec(_SimpleAction):
    """Deletes the flow run the triggering event is about."""

    type: Literal["delete-flow-run"] = Field(description="The action variant.")


class ResumeFlowRunSpec(_SimpleAction):
    """Resumes the paused flow run the triggering event is about."""

    type: Literal["resume-flow-run"] = Field(description="The action variant.")


class SuspendFlowRunSpec(_SimpleAction):
    """Suspends the flow run the triggering event is about."""

    type: Literal["suspend-flow-run"] = Field(description="The action variant.")


class ChangeFlowRunStateSpec(SpecModel):
    """Moves the flow run the triggering event is about to another state."""

    type: Literal["change-flow-run-state"] = Field(description="The action variant.")
    state: StateType = Field(description="The state type to move to, e.g. CANCELLED.")
    name: str | None = Field(None, description="A custom state name, e.g. Skipped.")
    message: str | None = Field(None, description="A message recorded with the state.")
    force: bool = Field(False, description="Force the change even if orchestration refuses it.")

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.ChangeFlowRunState(
            state=self.state, name=self.name, message=self.message, force=self.force
        )

    def references(self) -> list[tuple[str, str]]:
        return []


class _TargetedAction(SpecModel):
    """Base of actions on a selected object (by name or id) or an inferred one."""

    _kind: ClassVar[str] = "deployment"
    source: Literal["selected", "inferred"] = Field(
        "selected",
        description="selected: the object named here; inferred: the one the event is about.",
    )

    def _name(self) -> str | None:
        return getattr(self, self._kind, None)

    def _id(self) -> UUID | None:
        return getattr(self, f"{self._kind}_id", None)

    @model_validator(mode="after")
    def _one_target(self) -> _TargetedAction:
        given = [value for value in (self._name(), self._id()) if value is not None]
        if self.source == "inferred" and given:
            raise ValueError(
                f"source is inferred, so {self._kind} and {self._kind}_id must not be set; "
                f"remove them, or remove source: inferred"
            )
        if self.source == "selected" and len(given) != 1:
            raise ValueError(
                f"name the {self._kind.replace('_', ' ')} with `{self._kind}: ...` "
                f"(or `{self._kind}_id:`), exactly one of them, or set source: inferred"
            )
        return self

    def _resolved(self, resolver: Resolver, where: PathKey) -> UUID | None:
        if self.source == "inferred":
            return None
        name = self._name()
        if name is not None:
            lookup = getattr(resolver, self._kind)
            found: UUID = lookup(name, (*where, self._kind))
            return found
        return self._id()

    def references(self) -> list[tuple[str, str]]:
        name = self._name()
        return [(self._kind, name)] if name is not None else []


class _DeploymentTarget(_TargetedAction):
    _kind: ClassVar[str] = "deployment"
    deployment: str | None = Field(
        None,
        description="The deployment as flow-name/deployment-name.",
        pattern=r"^[^/]+/[^/]+$",
    )
    deployment_id: UUID | None = Field(None, description="The deployment's id, instead of a name.")


class RunDeploymentSpec(_DeploymentTarget):
    """Creates a flow run of a deployment."""

    type: Literal["run-deployment"] = Field(description="The action variant.")
    parameters: dict[str, Any] | None = Field(
        None, description="Parameters for the run; Jinja templates allowed; None uses defaults."
    )
    job_variables: dict[str, Any] | None = Field(
        None, description="Job variables for the run; None uses the deployment's."
    )
    schedule_after: Duration = Field(
        default_factory=lambda: timedelta(0),
        description="Wait this long before the run starts.",
    )

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        deployment_id = self._resolved(resolver, where)
        if self.deployment is not None and self.parameters:
            resolver.parameters(self.deployment, self.parameters, where)
        return prefect_actions.RunDeployment(
            source=self.source,
            deployment_id=deployment_id,
            parameters=self.parameters,
            job_variables=self.job_variables,
            schedule_after=self.schedule_after,
        )


class PauseDeploymentSpec(_DeploymentTarget):
    """Pauses a deployment's schedules."""

    type: Literal["pause-deployment"] = Field(description="The action variant.")

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.PauseDeployment(
            source=self.source, deployment_id=self._resolved(resolver, where)
        )


class ResumeDeploymentSpec(_DeploymentTarget):
    """Resumes a deployment's schedules."""

    type: Literal["resume-deployment"] = Field(description="The action variant.")

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.ResumeDeployment(
            source=self.source, deployment_id=self._resolved(resolver, where)
        )


class _WorkPoolTarget(_TargetedAction):
    _kind: ClassVar[str] = "work_pool"
    work_pool: str | None = Field(None, description="The work pool's name.")
    work_pool_id: UUID | None = Field(None, description="The work pool's id, instead of a name.")


class PauseWorkPoolSpec(_WorkPoolTarget):
    """Pauses a work pool."""

    type: Literal["pause-work-pool"] = Field(description="The action variant.")

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.PauseWorkPool(
            source=self.source, work_pool_id=self._resolved(resolver, where)
        )


class ResumeWorkPoolSpec(_WorkPoolTarget):
    """Resumes a work pool."""

    type: Literal["resume-work-pool"] = Field(description="The action variant.")

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.ResumeWorkPool(
            source=self.source, work_pool_id=self._resolved(resolver, where)
        )


class _WorkQueueTarget(_TargetedAction):
    _kind: ClassVar[str] = "work_queue"
    work_queue: str | None = Field(
        None, description="The work queue as pool-name/queue-name.", pattern=r"^[^/]+/[^/]+$"
    )
    work_queue_id: UUID | None = Field(None, description="The work queue's id, instead of a name.")


class PauseWorkQueueSpec(_WorkQueueTarget):
    """Pauses a work queue."""

    type: Literal["pause-work-queue"] = Field(description="The action variant.")

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.PauseWorkQueue(
            source=self.source, work_queue_id=self._resolved(resolver, where)
        )


class ResumeWorkQueueSpec(_WorkQueueTarget):
    """Resumes a work queue."""

    type: Literal["resume-work-queue"] = Field(description="The action variant.")

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.ResumeWorkQueue(
            source=self.source, work_queue_id=self._resolved(resolver, where)
        )


class _AutomationTarget(_TargetedAction):
    _kind: ClassVar[str] = "automation"
    automation: str | None = Field(None, description="The automation's name.")
    automation_id: UUID | None = Field(None, description="The automation's id, instead of a name.")


class PauseAutomationSpec(_AutomationTarget):
    """Pauses (disables) an automation."""

    type: Literal["pause-automation"] = Field(description="The action variant.")

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.PauseAutomation(
            source=self.source, automation_id=self._resolved(resolver, where)
        )


class ResumeAutomationSpec(_AutomationTarget):
    """Resumes (enables) an automation."""

    type: Literal["resume-automation"] = Field(description="The action variant.")

    def compile(self, resolver: Resolver, where: PathKey) -> prefect_actions.Action:
        return prefect_actions.ResumeAutomation(
            source=self.source, automation_id=self._resolved(resolver, where)
        )


_PREFECT_TYPES: dict[str, type[prefect_actions.Action]] = {
    "do-nothing": prefect_actions.DoNothing,
    "cancel-flow-run": prefect_actions.CancelFlowRun,
    "delete-flow-run": prefect_actions.DeleteFlowRun,
    "resume-flow-run": prefect_actions.ResumeFlowRun,
    "suspend-flow-run": prefect_actions.SuspendFlowRun,
}

ActionSpec = Annotated[
    DoNothingSpec
    | RunDeploymentSpec
    | PauseDeploymentSpec
    | ResumeDeploymentSpec
    | CancelFlowRunSpec
    | DeleteFlowRunSpec
    | ResumeFlowRunSpec
    | SuspendFlowRunSpec
    | ChangeFlowRunStateSpec
    | PauseWorkPoolSpec
    | ResumeWorkPoolSpec
    | PauseWorkQueueSpec
    | ResumeWorkQueueSpec
    | PauseAutomationSpec
    | ResumeAutomationSpec
    | SendNotificationSpec
    | CallWebhookSpec,
    Field(discriminator="type"),
]
"""Every action the Prefect OSS server accepts."""
