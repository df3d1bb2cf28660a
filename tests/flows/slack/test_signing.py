"""Slack request signatures: the only thing standing between a forged click and a deletion."""

from __future__ import annotations

import pytest

from flows.errors import SignatureError
from flows.slack.signing import Verifier, sign

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_790_000_000


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def verifier(clock: Clock | None = None, **options: int) -> Verifier:
    return Verifier(SECRET, clock=clock or Clock(), **options)


def refused(check: Verifier, timestamp: str | None, signature: str | None, body: bytes) -> str:
    with pytest.raises(SignatureError) as caught:
        check.verify(timestamp, signature, body)
    return str(caught.value)


def test_slacks_documented_example_signature() -> None:
    # The worked example from Slack's "Verifying requests from Slack" page.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert sign(SECRET, "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_a_genuine_request_passes_once() -> None:
    check = verifier()
    body = b"payload=%7B%7D"
    signature = sign(SECRET, str(NOW), body)

    check.verify(str(NOW), signature, body)

    assert "replayed" in refused(check, str(NOW), signature, body)
    other = b"payload=%7B%22a%22%3A1%7D"
    check.verify(str(NOW), sign(SECRET, str(NOW), other), other)  # same second, other click


@pytest.mark.parametrize(
    ("timestamp", "signature", "reason"),
    [
        (None, "v0=00", "missing"),
        (str(NOW), None, "missing"),
        (str(NOW), "", "missing"),
        ("soon", "v0=00", "not a Unix time"),
        ("-5", "v0=00", "not a Unix time"),
        (str(NOW), sign("another-secret", str(NOW), b"x=1"), "bad signature"),
        (str(NOW), sign(SECRET, str(NOW), b"x=2"), "bad signature"),  # body changed
        (str(NOW), sign(SECRET, str(NOW + 1), b"x=1"), "bad signature"),  # timestamp changed
        (str(NOW), "v0=\u00e9\u00e9", "bad signature"),  # not ASCII: refused, not a crash
        (str(NOW - 301), sign(SECRET, str(NOW - 301), b"x=1"), "stale"),
        (str(NOW + 301), sign(SECRET, str(NOW + 301), b"x=1"), "stale"),
    ],
)
def test_refusals_say_why(timestamp: str | None, signature: str | None, reason: str) -> None:
    assert reason in refused(verifier(), timestamp, signature, b"x=1")


@pytest.mark.parametrize("skew", [-300, -299, 299, 300])
def test_five_minutes_either_side_is_accepted(skew: int) -> None:
    timestamp = str(NOW + skew)
    verifier().verify(timestamp, sign(SECRET, timestamp, b"x=1"), b"x=1")


def test_a_forged_request_is_not_remembered() -> None:
    check = verifier(max_remembered=1)
    body = b"x=1"
    genuine = sign(SECRET, str(NOW), body)
    check.verify(str(NOW), genuine, body)

    for n in range(5):  # forgeries must not push the genuine signature out
        refused(check, str(NOW), sign("forger", str(NOW), f"x={n}".encode()), b"x=1")

    assert "replayed" in refused(check, str(NOW), genuine, body)


def test_the_replay_memory_is_bounded_and_forgets_what_is_stale_anyway() -> None:
    clock = Clock()
    check = verifier(clock, max_remembered=3)
    for n in range(5):
        body = f"x={n}".encode()
        check.verify(str(NOW), sign(SECRET, str(NOW), body), body)
    assert "remembered=3" in repr(check)

    clock.now = NOW + 301
    late = str(int(clock.now))
    check.verify(late, sign(SECRET, late, b"x=9"), b"x=9")
    assert "remembered=1" in repr(check)


def test_the_secret_never_shows() -> None:
    check = verifier()
    assert SECRET not in repr(check)
    messages = [
        refused(check, str(NOW), "v0=00", b"x=1"),
        refused(check, str(NOW - 999), "v0=00", b"x=1"),
    ]
    assert not any(SECRET in message for message in messages)


def test_an_empty_secret_is_a_setup_error() -> None:
    with pytest.raises(ValueError, match="signing secret is empty"):
        Verifier("")
