"""A proxy on 127.0.0.1 in front of a real Prefect server that breaks what passes, on cue.

Rules say which requests to break and how: ``drop`` forwards the request (so
the server does the work) and then hangs up without answering, as a lost
response looks to a client; ``delay`` answers late; ``hold`` forwards late
(the server may be gone by then); ``fail`` answers a status without
forwarding; ``down`` refuses to forward at all (a server that is gone).
Everything else, websockets (Prefect's event stream) included, passes through.
It runs on its own thread and event loop, so it serves any client of the test.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

Action = Literal["drop", "delay", "hold", "fail", "down"]


@dataclass
class Rule:
    """Break requests whose ``METHOD path`` matches ``pattern``, ``times`` times (None: always)."""

    pattern: str
    action: Action
    times: int | None = None
    seconds: float = 0.0
    status: int = 500
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return re.search(self.pattern, f"{method} {path}") is not None


@dataclass
class FaultProxy:
    upstream: str
    """The real server's API URL (``http://127.0.0.1:PORT/api``)."""
    rules: list[Rule] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="fault-proxy")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self._prefix}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def _rule(self, method: str, path: str) -> Rule | None:
        with self._lock:
            self.seen.append(f"{method} {path}")
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    return rule
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {
            k.strip().lower(): v.strip()
            for k, v in (line.split(":", 1) for line in header_lines if ":" in line)
        }
        path = target.split("?", 1)[0].removeprefix(self._prefix)
        rule = self._rule(method, path)
        if rule is not None and rule.action == "down":
            writer.close()
            return
        if rule is not None and rule.action == "fail":
            await reader.read(int(headers.get("content-length") or 0))
            body = b'{"detail":"injected fault"}'
            writer.write(
                f"HTTP/1.1 {rule.status} Injected\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await _close(writer)
            return
        if rule is not None and rule.action == "hold":
            await asyncio.sleep(rule.seconds)
        try:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        except OSError:
            writer.close()
            return
        # One request per connection upstream, so a response ends where the stream ends.
        rewritten = [
            line
            for line in header_lines
            if line and not line.lower().startswith(("connection:", "keep-alive:"))
        ]
        is_websocket = headers.get("upgrade", "").lower() == "websocket"
        if is_websocket:
            rewritten.append("Connection: Upgrade")
        else:
            rewritten.append("Connection: close")
        up_writer.write(("\r\n".join([request_line, *rewritten]) + "\r\n\r\n").encode("latin-1"))
        if is_websocket:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        length = int(headers.get("content-length") or 0)
        if length:
            up_writer.write(await reader.readexactly(length))
        await up_writer.drain()
        response = await up_reader.read()
        up_writer.close()
        if rule is not None and rule.action == "drop":
            writer.transport.abort()  # the server did the work; the answer is lost
            return
        if rule is not None and rule.action == "delay":
            await asyncio.sleep(rule.seconds)
        writer.write(response)
        await _close(writer)


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError, asyncio.IncompleteReadError):
        while data := await source.read(65536):
            target.write(data)
            await target.drain()
    await _close(target)


async def _close(writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError):
        await writer.drain()
    writer.close()
    with suppress(ConnectionError):
        await writer.wait_closed()


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()


class TcpProxy:
    """A plain TCP forwarder (for a database connection) that can be cut, as a network
    between a worker and its database can: open connections drop, new ones are refused."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="tcp-proxy")
        self.port = 0

    def start(self) -> TcpProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cut_all(), self._loop).result(10)

    def restore(self) -> None:
        self._cut = False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _cut_all(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _shutdown(self) -> None:
        await self._cut_all()
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._writers -= {writer, up_writer}
