"""Checks made while loading, beyond the spec's own validation.

Each turns a failure that would otherwise surface late (at apply time on the
server, or when an action runs at 3 a.m.) into a `file:line` problem now:
template files, rendering under the server's sandbox, the server's own model
rules, and block kinds that fit their actions.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.events.schemas.automations import AutomationCore
from pydantic import BaseModel, ValidationError

from triggers.errors import PathKey, Problem
from triggers.hints import closest
from triggers.load.problems import dotted, from_validation
from triggers.load.source import Document
from triggers.render.sandbox import syntax_error
from triggers.spec.action import RunDeploymentSpec
from triggers.spec.automation import ACTION_LISTS, AutomationSpec
from triggers.spec.blocks import block_kind_error
from triggers.spec.notification import CallWebhookSpec, SendNotificationSpec
from triggers.spec.template import TemplateRef


class _StandIn:
    """Resolves every name to a stable stand-in id, to compile before a server is asked."""

    def _any(self, kind: str, name: str) -> UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"prefect-janitor:{kind}:{name}")

    def deployment(self, name: str, where: PathKey) -> UUID:
        return self._any("deployment", name)

    def block(self, name: str, where: PathKey) -> UUID:
        return self._any("block", name)

    def automation(self, name: str, where: PathKey) -> UUID:
        return self._any("automation", name)

    def work_pool(self, name: str, where: PathKey) -> UUID:
        return self._any("work_pool", name)

    def work_queue(self, name: str, where: PathKey) -> UUID:
        return self._any("work_queue", name)

    def parameters(self, deployment: str, parameters: dict[str, Any], where: PathKey) -> None:
        """Checked against the deployment's schema once the server is asked."""


def compile_offline(
    spec: AutomationSpec, document: Document, problems: list[Problem]
) -> AutomationCore | None:
    """Compile to Prefect's client model; its own rules (e.g. Proactive ``within``) apply."""
    try:
        spec.trigger.compile()
    except ValidationError as exc:
        problems.extend(from_validation(exc, document, prefix=("trigger",)))
        return None
    try:
        return spec.compile(_StandIn())
    except ValidationError as exc:
        problems.extend(from_validation(exc, document))
    except ValueError as exc:
        problems.append(Problem(document.location, str(exc)))
    return None


def check_server_rules(core: AutomationCore, document: Document, problems: list[Problem]) -> None:
    """Validate with the server's own models, which check more than the client's.

    For example a run-deployment action that would re-trigger its own
    automation is refused only by the server; finding it here keeps a plan from
    promising a create that fails halfway through an apply.
    """
    from prefect.server.events.schemas.automations import AutomationCore as ServerAutomation

    data = core.model_dump(mode="json")
    try:
        ServerAutomation.model_validate(data)
        return
    except ValidationError as exc:
        whole = exc
    # The server's action union is not discriminated; validating each action
    # with its own class turns a wall of union errors into one line per fault.
    for field_name in ACTION_LISTS:
        for index, action in enumerate(data[field_name]):
            model = _server_action(action["type"])
            try:
                model.model_validate(action)
            except ValidationError as exc:
                problems.extend(from_validation(exc, document, prefix=(field_name, index)))
    for item in whole.errors(include_url=False):
        if not item["loc"]:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(Problem(document.location, f"the server would refuse: {message}"))


def _server_action(action_type: str) -> type[BaseModel]:
    from typing import get_args

    from prefect.server.events.actions import ServerActionTypes

    by_type = {
        get_args(cls.model_fields["type"].annotation)[0]: cls for cls in get_args(ServerActionTypes)
    }
    return by_type[action_type]


def load_templates(
    spec: AutomationSpec, document: Document, root: Path, problems: list[Problem]
) -> None:
    for (field_name, index), action in spec.all_actions():
        if not isinstance(action, SendNotificationSpec | CallWebhookSpec):
            continue
        for attribute, value, _ in action.templates():
            if not isinstance(value, TemplateRef):
                continue
            path = (field_name, index, attribute)
            try:
                value.load(root)
            except (OSError, ValueError) as exc:
                available = [
                    str(p.relative_to(root)) for p in root.glob("templates/*") if p.is_file()
                ]
                near = closest(value.template, available)
                problems.append(
                    Problem(
                        document.locate((*path, "template")),
                        f"{dotted(path)}: cannot read template {value.template}: "
                        f"{getattr(exc, 'strerror', None) or exc}",
                        f"did you mean {' or '.join(near)}?" if near else "check the path",
                    )
                )


def check_block_kinds(spec: AutomationSpec, document: Document, problems: list[Problem]) -> None:
    """call-webhook needs a Webhook block, send-notification a notification block.

    The server only finds out when the action runs ("not a webhook block"),
    long after sync reported success.
    """
    for (field_name, index), action in spec.all_actions():
        if not isinstance(action, CallWebhookSpec | SendNotificationSpec) or action.block is None:
            continue
        slug = action.block.split("/", 1)[0]
        error = block_kind_error(slug, webhook=isinstance(action, CallWebhookSpec))
        if error:
            problems.append(
                Problem(
                    document.locate((field_name, index, "block")),
                    f"{field_name}[{index}].block: {error}",
                    "call-webhook takes webhook/NAME; send-notification takes a "
                    "notification block such as slack-webhook/NAME",
                )
            )


def check_parameters(spec: AutomationSpec, document: Document, problems: list[Problem]) -> None:
    """Jinja in run-deployment parameters must at least be valid for the server's sandbox."""
    for (field_name, index), action in spec.all_actions():
        if not isinstance(action, RunDeploymentSpec):
            continue
        for key, text in _strings(action.parameters or {}, ("parameters",)):
            error = syntax_error(text) if "{" in text else None
            if error:
                where = (field_name, index, *key)
                problems.append(Problem(document.locate(where), f"{dotted(where)}: {error}"))


def _strings(value: Any, path: PathKey) -> list[tuple[PathKey, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _strings(item, (*path, key))]
    if isinstance(value, list):
        return [pair for i, item in enumerate(value) for pair in _strings(item, (*path, i))]
    return []
