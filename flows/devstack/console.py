"""A loopback stand-in for a Slack incoming webhook that prints each message.

The local stack points ``SLACK_WEBHOOK_URL`` here when none is given, so the
notifications are visible in the terminal instead of failing or going nowhere.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _texts(value: Any) -> list[str]:
    """The text of a text object, or of each element of a context block."""
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return [_unescape(value["text"])]
    return []


def _block_lines(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "header":
        return ["== " + text for text in _texts(block.get("text"))]
    lines = _texts(block.get("text"))
    for field in block.get("fields") or []:
        lines += ["  " + line for text in _texts(field) for line in text.splitlines()]
    elements = block.get("elements") or []
    if kind == "context":
        lines += [text for element in elements for text in _texts(element)]
    if kind == "actions":
        buttons = [element for element in elements if isinstance(element, dict)]
        labels = [
            f"[{''.join(_texts(button.get('text')))}]"
            + (f" {button['url']}" if "url" in button else "")
            for button in buttons
        ]
        values = {button["value"] for button in buttons if button.get("value")}
        lines.append("  ".join(labels) + "".join(f"  (flow run {value})" for value in values))
    return lines


def message_text(payload: Any) -> str:
    """A Block Kit message as terminal lines: header, texts, fields, context, buttons."""
    if not isinstance(payload, dict):
        return str(payload)
    blocks = [block for block in payload.get("blocks") or [] if isinstance(block, dict)]
    if not blocks:
        return _unescape(str(payload.get("text", "")))
    return "\n".join(line for block in blocks for line in _block_lines(block))


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that hangs up early is not worth a traceback in the terminal.

        Prefect 3.8's webhook calls can close each other's connections; the
        server records those as failed actions, which is where they belong.
        """
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SlackConsole:
    """Receive webhook POSTs on 127.0.0.1 and hand each message to ``sink``."""

    def __init__(self, sink: Callable[[str], None] = print, port: int = 0) -> None:
        self.sink = sink
        self.received: list[Any] = []
        self.arrived: list[float] = []  # time.monotonic() of each message, for latency figures
        self.arrived_at: list[float] = []  # time.time() of each, to compare with event times
        console = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload: Any = json.loads(body)
                except ValueError:
                    payload = body.decode(errors="replace")
                console.arrived.append(time.monotonic())
                console.arrived_at.append(time.time())
                console.received.append(payload)
                text = message_text(payload).replace("\n", "\n        ")
                console.sink(f"[slack] {text}")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _QuietServer(("127.0.0.1", port), Handler)
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
