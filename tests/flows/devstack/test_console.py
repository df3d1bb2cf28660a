"""The terminal printer that stands in for Slack in the local stack."""

from __future__ import annotations

import httpx

from flows.devstack.console import SlackConsole, message_text


def test_message_text_reads_block_kit() -> None:
    text = message_text(
        {
            "text": "fallback",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "*hello*"}},
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Open"},
                            "url": "u",
                        }
                    ],
                },
            ],
        }
    )
    assert text == "*hello*\n[Open] u"


def test_console_prints_and_keeps_what_it_receives() -> None:
    printed: list[str] = []
    console = SlackConsole(printed.append).start()
    try:
        message = {"text": "a &lt;b&gt;", "blocks": []}
        assert httpx.post(console.url, json=message, timeout=5).text == "ok"
    finally:
        console.stop()
    assert console.received == [message]
    assert printed == ["[slack] a <b>"]
