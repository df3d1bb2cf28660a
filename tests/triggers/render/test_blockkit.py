"""Slack's Block Kit limits, each one caught with the JSON path that breaks it."""

from __future__ import annotations

from typing import Any

import pytest

from triggers.render.check import blockkit


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(**extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": "Go"}, **extra}


def message(*blocks: dict[str, Any], text: str = "fallback") -> dict[str, Any]:
    return {"text": text, "blocks": list(blocks)}


def test_a_message_within_the_limits_passes() -> None:
    ok = message(
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        section("s" * 3000),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2000}] * 10},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10},
        {"type": "actions", "elements": [button(value="v" * 2000, url="u" * 3000)]},
        {"type": "divider"},
    )
    assert blockkit.violations(ok) == []


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (message(*[section("x")] * 51), "blocks: 51 blocks, Slack's limit is 50"),
        (message(section("x" * 3001)), "blocks[0].text.text: 3,001 characters"),
        (
            message({"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}),
            "blocks[0].text.text: 151 characters, Slack's limit is 150",
        ),
        (
            message({"type": "header", "text": {"type": "mrkdwn", "text": "h"}}),
            "blocks[0].text.type: 'mrkdwn', expected plain_text",
        ),
        (
            message({"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}),
            "blocks[0].fields: 11 fields",
        ),
        (
            message({"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}),
            "blocks[0].fields[0].text: 2,001 characters",
        ),
        (
            message({"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}),
            "blocks[0].elements: 11",
        ),
        (
            message({"type": "actions", "elements": [button(value="v" * 2001)]}),
            "blocks[0].elements[0].value: 2,001 characters",
        ),
        (
            message(
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "text": {"type": "plain_text", "text": "b" * 76}}
                    ],
                }
            ),
            "blocks[0].elements[0].text.text: 76 characters",
        ),
        (
            message({"type": "actions", "elements": [button(style="green")]}),
            "style: 'green', expected primary or danger",
        ),
        (message(section("")), "blocks[0].text.text: empty"),
        (message(section("x"), text=""), "text: missing"),
        (message({"type": "sectoin"}), "'sectoin' is not a Block Kit block"),
        (message({**section("x"), "block_id": "b" * 256}), "blocks[0].block_id: 256 characters"),
        (message(section("x"), text="t" * 4001), "text: 4,001 characters"),
    ],
)
def test_each_limit_is_caught_with_its_path(broken: dict[str, Any], expected: str) -> None:
    assert any(expected in problem for problem in blockkit.violations(broken)), blockkit.violations(
        broken
    )


def test_unescaped_finds_event_text_in_mrkdwn_only() -> None:
    mention = "<@U0JANITOR>"
    found = message(
        {"type": "header", "text": {"type": "plain_text", "text": mention}},
        section(f"hi {mention}"),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "&lt;@U0JANITOR&gt;"}]},
    )
    assert blockkit.unescaped(found, mention) == ["blocks[1].text.text"]


def test_only_messages_with_blocks_are_checked() -> None:
    assert blockkit.is_message({"blocks": []})
    assert not blockkit.is_message({"text": "plain"})
    assert not blockkit.is_message([1, 2])
