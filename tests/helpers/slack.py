"""Slack's side of an approval click, as the tests send it: payloads, forms, signatures."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from flows.slack.app import APPROVE, OPEN, REJECT
from flows.slack.signing import sign

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ALICE, BOB, MALLORY = "U0ALICE01", "W0BOB0002", "U0MALLORY"


def approval_blocks(run_id: UUID | str) -> list[dict[str, Any]]:
    """The message the approval template posts, as far as the app is concerned."""
    button = {"type": "button", "value": str(run_id)}
    return [
        {"type": "section", "block_id": "summary", "text": {"type": "mrkdwn", "text": "3 runs"}},
        {
            "type": "actions",
            "block_id": "janitor-approval",
            "elements": [
                {**button, "action_id": APPROVE, "text": {"type": "plain_text", "text": "Approve"}},
                {**button, "action_id": REJECT, "text": {"type": "plain_text", "text": "Reject"}},
                {"type": "button", "action_id": OPEN, "url": "http://127.0.0.1:4200/runs"},
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "database-cleanup"}]},
    ]


def click(
    action_id: str,
    value: object,
    response_url: str,
    user: str = ALICE,
    username: str = "alice",
    **changes: Any,
) -> dict[str, Any]:
    """A block_actions payload as Slack sends it for a button in the approval message."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": username, "name": username, "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM", "domain": "example"},
        "actions": [
            {
                "type": "button",
                "block_id": "janitor-approval",
                "action_id": action_id,
                "value": str(value),
                "action_ts": "1790000000.000100",
            },
        ],
        "response_url": response_url,
        "message": {"type": "message", "text": "approve?", "blocks": approval_blocks(str(value))},
    }
    return {**payload, **changes}


def form(payload: object) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return urlencode({"payload": text}).encode()


def signed(body: bytes, age: int = 0, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()) - age)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign(secret, timestamp, body),
    }
