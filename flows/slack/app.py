"""Approve or reject a waiting cleanup from its Slack message.

The approval message carries two buttons whose value is the cleanup's flow
run id. Slack POSTs each click here, signed; this app checks who clicked and
that the run is a paused ``database-cleanup``, resumes it with the same form
a person fills in the Prefect UI (``flows.cleanup.approval.ApprovalForm``), answers
Slack within its 3 s limit, and only then rewrites the message so the buttons
cannot be pressed again. Anything it cannot check is refused and changes
nothing: a click is an order to delete data.

A busy Prefect server can take longer than Slack waits. Slack's own advice is to
acknowledge at once and report through the message's ``response_url``: when the
decision is not made within ``answer_within_seconds``, the app says it is on its
way, goes on for up to ``decision_timeout_seconds``, then rewrites the message
(decided) or adds a note only the clicker sees (refused, with the reason), so a
slow server never turns a click into "try again".
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.logging import get_logger
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from flows.cleanup.approval import ApprovalForm, answer
from flows.errors import AnswerRefused, RequestRefused, SignatureError, SlackSetupError
from flows.slack.signing import Verifier

APPROVAL_BLOCK = "janitor-approval"
APPROVE, REJECT, OPEN = "janitor-approve", "janitor-reject", "janitor-open"
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
PENDING = "on its way: Prefect is slow to answer; this message changes once it has"
logger = get_logger("janitor.slack")


class SlackAppSettings(BaseModel):
    """Everything the app needs, checked once at start so no click meets a setup error."""

    model_config = ConfigDict(frozen=True)

    signing_secret: SecretStr  # the Slack app's; verifies that a request comes from Slack
    approvers: frozenset[str]  # Slack user IDs that may approve or reject
    api_url: str  # the Prefect server's API
    api_key: SecretStr | None = None
    api_auth_string: SecretStr | None = None  # basic auth "user:pass" of a self-hosted server
    answer_within_seconds: float = Field(2.0, gt=0, le=2.5)  # Slack waits 3 s for an answer
    # How long a decision may take once Slack has been told it is on its way; a
    # response_url takes messages for 30 minutes.
    decision_timeout_seconds: float = Field(30.0, gt=0, le=1800)

    @field_validator("signing_secret")
    @classmethod
    def _secret_given(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value().strip()
        if not secret:
            raise ValueError(
                "SLACK_SIGNING_SECRET is not set: copy it from your Slack app's "
                "Basic Information page (App Credentials > Signing Secret)"
            )
        return SecretStr(secret)

    @field_validator("approvers", mode="before")
    @classmethod
    def _approver_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = frozenset(part.strip() for part in value.split(",") if part.strip())
        if not value:
            raise ValueError(
                "JANITOR_SLACK_APPROVERS is empty: set it to the comma-separated Slack user "
                "IDs that may approve cleanups, e.g. U0123ABC,U0456DEF"
            )
        wrong = sorted(str(item) for item in value if not SLACK_USER_ID.match(str(item)))
        if wrong:
            raise ValueError(
                f"JANITOR_SLACK_APPROVERS must hold Slack user IDs like U0123ABC, not {wrong}: "
                "in Slack, open the person's profile, then More > Copy member ID"
            )
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            found = repr(value) if value else "not set"
            raise ValueError(
                "PREFECT_API_URL must be the Prefect server's API URL, e.g. "
                f"http://127.0.0.1:4200/api (it is {found})"
            )
        return value.rstrip("/")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SlackAppSettings:
        """Read the environment (Prefect's settings for the server); raise ``SlackSetupError``."""
        from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL

        env = os.environ if environ is None else environ
        values = {
            "signing_secret": env.get("SLACK_SIGNING_SECRET", ""),
            "approvers": env.get("JANITOR_SLACK_APPROVERS", ""),
            "api_url": env.get("PREFECT_API_URL") or PREFECT_API_URL.value() or "",
            "api_key": PREFECT_API_KEY.value(),
            "api_auth_string": PREFECT_API_AUTH_STRING.value(),
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            # Every check above names its variable; the environment only gives strings.
            problems = [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()]
            raise SlackSetupError(
                "the Slack app cannot start:\n  " + "\n  ".join(problems)
            ) from None


@dataclass(frozen=True)
class Click:
    """The parts of a ``block_actions`` payload that a decision needs."""

    approve: bool
    run_id: UUID
    user_id: str
    username: str
    response_url: str
    blocks: list[Any]


def parse_click(body: bytes) -> Click | None:
    """Read Slack's form body; None for a button with nothing to do (the UI link)."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
    except UnicodeDecodeError:
        raise RequestRefused(400, "body is not UTF-8 form data") from None
    if "payload" not in fields:
        raise RequestRefused(400, "no 'payload' form field")
    try:
        payload = json.loads(fields["payload"][0])
    except ValueError:
        raise RequestRefused(400, "payload is not JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        kind = payload.get("type") if isinstance(payload, dict) else type(payload).__name__
        raise RequestRefused(400, f"not a block_actions payload (type {str(kind)[:40]!r})")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise RequestRefused(400, "payload has no actions")
    action_id = actions[0].get("action_id")
    if action_id == OPEN:
        return None
    if action_id not in (APPROVE, REJECT):
        raise RequestRefused(400, f"unknown action_id {str(action_id)[:40]!r}")
    try:
        run_id = UUID(str(actions[0].get("value")))
    except ValueError:
        raise RequestRefused(400, "button value is not a flow run id") from None
    user = payload.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise RequestRefused(400, "payload has no user id")
    response_url = payload.get("response_url")
    if not isinstance(response_url, str) or not response_url.startswith(("https://", "http://")):
        raise RequestRefused(400, "payload has no response_url")
    message = payload.get("message")
    blocks = message.get("blocks") if isinstance(message, dict) else None
    return Click(
        approve=action_id == APPROVE,
        run_id=run_id,
        user_id=user["id"],
        username=str(user.get("username") or user.get("name") or user["id"]),
        response_url=response_url,
        blocks=blocks if isinstance(blocks, list) else [],
    )


def escape(text: str) -> str:
    """Slack mrkdwn control characters, so a name cannot become a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def decided_message(click: Click, at: datetime) -> dict[str, Any]:
    """The original message with its buttons replaced by who decided, and when."""
    mark, verb = (":white_check_mark:", "Approved") if click.approve else (":x:", "Rejected")
    line = f"{verb} in Slack by {escape(click.username)} at {at.astimezone(UTC):%H:%M} UTC"
    said = {"type": "mrkdwn", "text": f"{mark} {line}"}
    context = {"type": "context", "block_id": "janitor-decision", "elements": [said]}
    blocks = [
        context if isinstance(b, dict) and b.get("block_id") == APPROVAL_BLOCK else b
        for b in click.blocks
    ]
    if context not in blocks:
        blocks.append(context)
    return {"replace_original": True, "text": line, "blocks": blocks}


def refused_message(click: Click, reason: str) -> dict[str, Any]:
    """A note only the clicker sees, for a click refused after Slack had its answer."""
    verb = "approve" if click.approve else "reject"
    text = f":warning: Could not {verb} this cleanup: {escape(reason)}"
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


async def post_decision(click: Click, at: datetime) -> None:
    """Rewrite the Slack message once Slack has its answer; a failure is logged, the
    decision stands (the run was resumed, and its own events announce the outcome)."""
    await post_to_slack(click.response_url, decided_message(click, at))


async def post_to_slack(response_url: str, message: dict[str, Any]) -> None:
    """POST ``message`` to a click's ``response_url``; a failure is logged, not raised."""
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(response_url, json=message)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        logger.warning("could not update the Slack message: %s: %s", type(exc).__name__, exc)
        return
    if response.status_code >= 300:
        answer = f"{response.status_code} {response.text[:200]}"
        logger.warning("Slack refused the message update: %s", answer)


class Approvals:
    """The request handler: verify, parse, authorize, resume, then update the message."""

    def __init__(self, settings: SlackAppSettings) -> None:
        self.settings = settings
        self.verifier = Verifier(settings.signing_secret.get_secret_value())
        self._lock = asyncio.Lock()
        self._late: set[asyncio.Task[None]] = set()  # decisions still running after the answer

    async def actions(self, request: Request) -> PlainTextResponse:
        body, headers = await request.body(), request.headers
        try:
            try:
                timestamp = headers.get("X-Slack-Request-Timestamp")
                self.verifier.verify(timestamp, headers.get("X-Slack-Signature"), body)
            except SignatureError as exc:
                raise RequestRefused(401, str(exc)) from None
            click = parse_click(body)
            if click is None:
                return PlainTextResponse("nothing to do")
            if click.user_id not in self.settings.approvers:
                raise RequestRefused(
                    403, f"Slack user {click.user_id} is not in JANITOR_SLACK_APPROVERS"
                )
            decision = asyncio.create_task(self._decide(click))
            done, _ = await asyncio.wait({decision}, timeout=self.settings.answer_within_seconds)
            if not done:
                self._follow(click, decision)
                return PlainTextResponse(PENDING)
            decision.result()
        except RequestRefused as refusal:
            logger.warning("refused (%d): %s", refusal.status, refusal.reason)
            return PlainTextResponse(refusal.reason, status_code=refusal.status)
        verb = "approved" if click.approve else "rejected"
        logger.info("%s flow run %s in Slack by %s", verb, click.run_id, click.user_id)
        return PlainTextResponse(
            verb, background=BackgroundTask(post_decision, click, datetime.now(UTC))
        )

    def _follow(self, click: Click, decision: asyncio.Task[None]) -> None:
        """Report a decision that outlived Slack's wait through the message itself."""

        async def report() -> None:
            try:
                await decision
            except RequestRefused as refusal:
                logger.warning("refused (%d): %s", refusal.status, refusal.reason)
                await post_to_slack(click.response_url, refused_message(click, refusal.reason))
                return
            except Exception as exc:  # nobody awaits this task: say it here, and in Slack
                logger.error("deciding failed: %s: %s", type(exc).__name__, exc)
                reason = "the Slack app failed (see its log); check the run, then retry"
                await post_to_slack(click.response_url, refused_message(click, reason))
                return
            verb = "approved" if click.approve else "rejected"
            logger.info("%s flow run %s in Slack by %s", verb, click.run_id, click.user_id)
            await post_decision(click, datetime.now(UTC))

        # Held here so the task is not garbage-collected before it reports.
        follower = asyncio.create_task(report())
        self._late.add(follower)
        follower.add_done_callback(self._late.discard)

    async def _decide(self, click: Click) -> None:
        """Resume the run if it is a paused cleanup; raise ``RequestRefused`` if not."""
        budget = self.settings.decision_timeout_seconds
        try:
            # One decision at a time: a double click must not resume a run twice.
            async with asyncio.timeout(budget), self._lock, self._client() as client:
                await self._resume_with(client, click)
        except TimeoutError:
            reason = f"Prefect did not answer within {budget:g} s; check the run, then retry"
            raise RequestRefused(503, reason) from None
        except httpx.HTTPError as exc:
            logger.error("Prefect call failed: %s: %s", type(exc).__name__, exc)
            raise RequestRefused(
                503, "the Prefect server failed or is unreachable; retry"
            ) from None

    async def _resume_with(self, client: PrefectClient, click: Click) -> None:
        verb = "approved" if click.approve else "rejected"
        form = ApprovalForm(
            approve=click.approve,
            notes=f"{verb} in Slack by {click.username}",
            approver=f"{click.username} (Slack {click.user_id})",
        )
        try:
            await answer(client, click.run_id, form)
        except AnswerRefused as refused:
            raise RequestRefused(403 if refused.forbidden else 400, refused.reason) from None

    def _client(self) -> PrefectClient:
        key, auth = self.settings.api_key, self.settings.api_auth_string
        return PrefectClient(
            self.settings.api_url,
            api_key=key.get_secret_value() if key else None,
            auth_string=auth.get_secret_value() if auth else None,
            httpx_settings={"timeout": httpx.Timeout(self.settings.decision_timeout_seconds)},
        )


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app(settings: SlackAppSettings) -> Starlette:
    """The ASGI app: ``POST /slack/actions`` (Slack's Interactivity URL), ``GET /healthz``."""
    approvals = Approvals(settings)
    routes = [
        Route("/slack/actions", approvals.actions, methods=["POST"]),
        Route("/healthz", healthz),
    ]
    return Starlette(routes=routes)
