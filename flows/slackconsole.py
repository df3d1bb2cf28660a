"""A loopback stand-in for a Slack incoming webhook that prints each message.

The local stack points ``SLACK_WEBHOOK_URL`` here when none is given, so the
notifications are visible in the terminal instead of failing or going nowhere.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def message_text(payload: Any) -> str:
    """The readable part of a Block Kit message: the fallback text and every text block."""
    if not isinstance(payload, dict):
        return str(payload)
    lines = [str(payload.get("text", ""))] if payload.get("text") else []
    for block in payload.get("blocks", []) or []:
        if not isinstance(block, dict):
            continue
        text = block.get("text")
        if isinstance(text, dict) and text.get("text") and text["text"] not in lines:
            lines.append(str(text["text"]))
        for element in block.get("elements", []) or []:
            if isinstance(element, dict):
                inner = element.get("text")
                if isinstance(inner, dict):
                    label = inner.get("text", "")
                    url = element.get("url")
                    lines.append(f"[{label}]" + (f" {url}" if url else ""))
                elif isinstance(inner, str):
                    lines.append(inner)
    return "\n".join(lines)


class SlackConsole:
    """Receive webhook POSTs on 127.0.0.1 and hand each message to ``sink``."""

    def __init__(self, sink: Callable[[str], None] = print, port: int = 0) -> None:
        self.sink = sink
        self.received: list[Any] = []
        console = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload: Any = json.loads(body)
                except ValueError:
                    payload = body.decode(errors="replace")
                console.received.append(payload)
                console.sink(f"[slack] {message_text(payload)}")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/slack"

    def start(self) -> SlackConsole:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
