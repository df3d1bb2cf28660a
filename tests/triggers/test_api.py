"""How server refusals are summarised: one line, no echo of what was sent."""

import httpx

from triggers.api import _detail, is_write


def test_422_detail_keeps_locations_and_messages_but_not_inputs() -> None:
    secret = "https://hooks.slack.com/services/T0/B0/SECRET"
    response = httpx.Response(
        422,
        json={
            "exception_message": "Invalid request received.",
            "exception_detail": [
                {
                    "type": "string_type",
                    "loc": ["body", "data", "url"],
                    "msg": "Input should be a valid string",
                    "input": secret,
                }
            ],
            "request_body": {"data": {"url": secret}},
        },
    )
    text = _detail(response)
    assert text == "data.url: Input should be a valid string"
    assert secret not in text


def test_reads_and_writes() -> None:
    assert not is_write("POST", "/automations/filter")
    assert not is_write("GET", "/automations/x")
    assert is_write("POST", "/automations/")
    assert is_write("PUT", "/automations/x")
    assert is_write("DELETE", "/automations/x")
