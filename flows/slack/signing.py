"""Is this request really from Slack, and is it the first time we see it?

A button click resumes a cleanup that deletes data, so the endpoint trusts
nothing it cannot check: Slack signs every request with the app's signing
secret (``v0=`` + HMAC-SHA256 over ``v0:{timestamp}:{body}``), the timestamp
must be recent, and a signature is accepted once. Slack's own retries carry
fresh signatures, so refusing a repeated one only stops replays.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable

from flows.errors import SignatureError

WINDOW_SECONDS = 300  # Slack's recommendation: five minutes either side of now
MAX_REMEMBERED = 10_000  # far above any workspace's clicks in five minutes
VERSION = "v0"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` Slack would send; tests and the verifier share it."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


class Verifier:
    """Check signature, age and novelty of each request, in that order.

    The replay memory only records requests whose signature is valid, so a
    forger cannot fill it; entries leave once their timestamp is too old to be
    accepted anyway. If more than ``max_remembered`` genuine requests arrive
    within the window, the oldest are forgotten (bounded memory beats an
    endpoint that stops answering).
    """

    def __init__(
        self,
        secret: str,
        *,
        window_seconds: int = WINDOW_SECONDS,
        max_remembered: int = MAX_REMEMBERED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the Slack signing secret is empty")
        self._secret = secret
        self._window = window_seconds
        self._max = max_remembered
        self._clock = clock
        self._seen: OrderedDict[str, int] = OrderedDict()  # signature -> its timestamp

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"Verifier(window_seconds={self._window}, remembered={len(self._seen)})"

    def verify(self, timestamp: str | None, signature: str | None, body: bytes) -> None:
        """Return if the request may be handled; raise ``SignatureError`` saying why not."""
        if not timestamp or not signature:
            raise SignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
        if not timestamp.isascii() or not timestamp.isdigit():
            raise SignatureError("X-Slack-Request-Timestamp is not a Unix time")
        sent = int(timestamp)
        now = self._clock()
        if abs(now - sent) > self._window:
            raise SignatureError(
                f"stale request: timestamp is {int(now - sent)} s from now "
                f"(more than {self._window} s; check the server clock)"
            )
        expected = sign(self._secret, timestamp, body).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
            raise SignatureError("bad signature (is SLACK_SIGNING_SECRET the app's secret?)")
        self._forget_before(now - self._window)
        if signature in self._seen:
            raise SignatureError("replayed request: this signature was already used")
        self._seen[signature] = sent
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)

    def _forget_before(self, oldest: float) -> None:
        """Drop signatures whose timestamp can no longer pass the age check."""
        for signature, sent in list(self._seen.items()):
            if sent < oldest:
                del self._seen[signature]
