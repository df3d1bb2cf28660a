"""The Prefect server's template sandbox, reproduced for checks before the server sees a template.

The server renders action templates in its own sandbox (immutable, ChainableUndefined,
``tojson`` and ``ui_url`` filters, loop limits). Checking at load time with that
same environment turns a template that would fail at 3 a.m. into a load error.
Also the events templates are tried with: samples, made hostile, made long.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any
from uuid import UUID, uuid4

import jinja2

_ORCHESTRATION_OBJECTS = (
    "deployment",
    "flow",
    "flow_run",
    "task_run",
    "work_pool",
    "work_queue",
    "concurrency_limit",
)


@cache
def _prefect_sandbox() -> None:
    """Register the server's filters (ui_url, ...) once, as the server does."""
    from prefect.server.events.jinja_filters import all_filters
    from prefect.server.utilities.user_templates import register_user_template_filters

    register_user_template_filters(all_filters)


@contextmanager
def _quiet_renderer() -> Iterator[None]:
    # The server logs every failed render with a traceback; here a failure is
    # an expected answer, reported as a problem with its line instead.
    logger = logging.getLogger("prefect.server.utilities.user_templates")
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


@lru_cache(maxsize=512)
def syntax_error(source: str) -> str | None:
    """Why the server would refuse this template, or None if it is valid."""
    from prefect.server.utilities.user_templates import (
        TemplateSecurityError,
        validate_user_template,
    )

    _prefect_sandbox()
    try:
        validate_user_template(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"template syntax error at template line {exc.lineno}: {exc.message}"
    except TemplateSecurityError as exc:
        return f"template refused by the server's sandbox: {exc.message}"
    return None


@lru_cache(maxsize=512)
def _names_used(source: str) -> tuple[str, ...]:
    from prefect.server.utilities.user_templates import matching_types_in_templates

    return tuple(matching_types_in_templates([source], set(_ORCHESTRATION_OBJECTS)))


def render(source: str, context: dict[str, Any]) -> str:
    """Render as the server would; raises ValueError with the cause."""
    from prefect.server.utilities.user_templates import (
        TemplateRenderError,
        render_user_template_sync,
    )

    _prefect_sandbox()
    full = dict(context)
    # The server puts None for each orchestration object a template names and
    # the event does not relate to; do the same so `flow_run|ui_url` behaves alike.
    for name in _names_used(source):
        full.setdefault(name, None)
    compiled = _compiled(source)
    if compiled is None:  # not a template at all, or the environment moved
        with _quiet_renderer():
            try:
                return render_user_template_sync(source, full)
            except TemplateRenderError as exc:
                raise ValueError(f"template fails to render: {exc.error}") from exc
    try:
        return compiled.render(full)
    except Exception as exc:  # whatever the template raises, as the server would
        raise ValueError(f"template fails to render: {exc!r}") from exc


@lru_cache(maxsize=512)
def _compiled(source: str) -> jinja2.Template | None:
    """The template compiled once in the server's own sandbox environment.

    Compiling dominates a check of many automations sharing one template;
    rendering the cached Template in the same environment keeps the rules.
    """
    from prefect.server.utilities import user_templates

    environment = getattr(user_templates, "_sync_template_environment", None)
    if environment is None or not user_templates.maybe_template(source):
        return None
    return environment.from_string(source)


def json_error(rendered: str) -> str | None:
    """Why a rendered payload is not JSON, with the place, or None."""
    try:
        json.loads(rendered)
    except json.JSONDecodeError as exc:
        snippet = rendered[max(0, exc.pos - 30) : exc.pos + 30].replace("\n", "\\n")
        return (
            f"payload does not render valid JSON: {exc.msg} at rendered line "
            f"{exc.lineno} column {exc.colno} (near {snippet!r})"
        )
    return None


def sample_event(
    event: str, resource_id: str, payload: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A plausible event for render checks when the template ships no sample."""
    return {
        "id": str(uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "received": datetime.now(UTC).isoformat(),
        "event": event,
        "resource": {"prefect.resource.id": resource_id, "prefect.resource.name": "sample"},
        "related": [],
        "payload": payload or {},
    }


def sample_event_from(item: Any) -> dict[str, Any]:
    """A sample file's event with the fields a person leaves out filled in."""
    if not isinstance(item, dict) or not isinstance(item.get("resource", {}), dict):
        raise ValueError("each sample must be an event object with a `resource` mapping")
    base = sample_event(
        str(item.get("event", "janitor.sample")),
        str((item.get("resource") or {}).get("prefect.resource.id", "janitor.sample")),
    )
    return {**base, **item}


MENTION = "<@U0JANITOR>"
"""Part of every hostile string: a Slack mention that must arrive escaped."""
_HOSTILE = f' "quoted" \\ back\\slash\nnew line \t tab ünïcødé 🧹 {MENTION} <!channel> & </script>'
LONG = 6000  # longer than any Slack text field


def hostile(event: dict[str, Any], long: bool = False) -> dict[str, Any]:
    """The same event with every name and payload string made awkward.

    A JSON payload must survive quotes, backslashes, newlines and unicode in
    whatever the event carries; a hand-quoted ``"{{ name }}"`` does not. With
    ``long``, every string is also longer than any Slack field, so a template
    that does not truncate user text shows it.
    """

    def spoil(value: Any) -> Any:
        if isinstance(value, str):
            spoiled = value + _HOSTILE
            return (spoiled * (LONG // len(spoiled) + 1))[:LONG] if long else spoiled
        if isinstance(value, dict):
            return {key: spoil(item) for key, item in value.items()}
        if isinstance(value, list):
            return [spoil(item) for item in value]
        return value

    resource = {
        key: (value if key == "prefect.resource.id" else spoil(value))
        for key, value in (event.get("resource") or {}).items()
    }
    resource.setdefault("prefect.resource.name", spoil("sample"))
    return {**event, "resource": resource, "payload": spoil(event.get("payload") or {})}


def context_for(event: dict[str, Any], automation: dict[str, Any]) -> dict[str, Any]:
    """The template context the server builds for a triggered action."""
    from prefect.server.events.schemas.automations import Automation
    from prefect.server.events.schemas.events import ReceivedEvent

    received = ReceivedEvent.model_validate(event)
    server_automation = Automation.model_validate({"id": str(UUID(int=0)), **automation})
    from prefect.server.events.schemas.labelling import LabelDiver

    return {
        "automation": server_automation,
        "event": received,
        "labels": LabelDiver(received.resource.root),
        "firing": None,
        "firings": [],
        "events": [received],
    }
