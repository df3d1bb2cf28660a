"""The API deletion path on awkward servers: no bulk endpoint, busy answers, lost answers.

A small forwarding proxy stands between the cleanup and a real Prefect server.
It answers 404 for ``/flow_runs/bulk_delete`` (as servers before the endpoint
did) and 503 for every third request (as a busy SQLite-backed server does);
everything else reaches the real server. ``helpers.proxy`` drops answers.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from prefect.client.orchestration import PrefectClient
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from flows.cleanup.deletion import delete_runs
from flows.cleanup.manifest import Manifest, make_manifest
from flows.cleanup.rules import Policy
from flows.cleanup.selection import Selection
from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history
from helpers.cleanup import surviving
from helpers.proxy import Rule, fault_proxy

pytestmark = pytest.mark.anyio


class OldBusyServer(ThreadingHTTPServer):
    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream.rstrip("/")
        self.requests = 0
        self.busy = 0
        self.lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"


class _Forward(BaseHTTPRequestHandler):
    server: OldBusyServer

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.requests += 1
            busy = self.server.requests % 3 == 0
            self.server.busy += busy
        if self.path.endswith("/flow_runs/bulk_delete"):
            self._answer(404, b'{"detail":"Not Found"}')
            return
        if busy:
            self._answer(503, b'{"detail":"busy"}')
            return
        path = self.path.removeprefix("/api")
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type",)}
        reply = httpx.request(
            self.command, self.server.upstream + path, content=body, headers=headers, timeout=30
        )
        self._answer(reply.status_code, reply.content)

    def _answer(self, status: int, content: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def old_busy_server(sqlite_server: LocalServer) -> Iterator[OldBusyServer]:
    proxy = OldBusyServer(sqlite_server.api_url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


async def test_without_bulk_delete_and_under_503s_every_approved_run_goes(
    sqlite_server: LocalServer, old_busy_server: OldBusyServer
) -> None:
    flow_name = f"history-{uuid.uuid4().hex[:8]}"
    specs = [RunSpec(flow_name, ago=timedelta(days=40)) for _ in range(7)]
    specs.append(RunSpec(flow_name, ago=timedelta(days=40), tags=["keep"]))
    ids = await make_history(sqlite_server.api_url, sqlite_server.database_url, specs)
    async with PrefectClient(sqlite_server.api_url) as client:
        flow = await client.read_flow_by_name(flow_name)
    selection = Selection(
        cutoff=datetime.now(UTC) - timedelta(days=30),
        states=("COMPLETED",),
        protected_tags=("keep",),
        flow_ids=(flow.id,),
        limit=6,
    )

    # Prefect's client would retry the 503s itself, slowly; the cleanup's own
    # backoff is what is under test.
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}):
        async with PrefectClient(old_busy_server.api_url) as client:
            manifest, _ = await make_manifest(Policy.single(selection), client, None)
            progress = await delete_runs(
                Policy.single(selection), manifest, client=client, batch_size=4
            )

    assert old_busy_server.busy > 0
    assert progress.path == "api-per-run"
    assert (progress.deleted, progress.skipped, progress.failed) == (6, 0, 0)
    left = await surviving(sqlite_server.api_url, ids)
    assert len(left) == 2
    assert ids[-1] in left  # the protected one


async def test_a_run_already_gone_is_skipped_not_counted_as_deleted(
    sqlite_server: LocalServer,
) -> None:
    selection = Selection(cutoff=datetime.now(UTC), states=("COMPLETED",))
    async with PrefectClient(sqlite_server.api_url) as client:
        progress = await delete_runs(
            Policy.single(selection), Manifest.of([uuid.uuid4()]), client=client
        )
    assert (progress.deleted, progress.skipped, progress.failed) == (0, 1, 0)


async def test_lost_answers_never_delete_more_than_the_manifest_and_the_count_is_exact(
    server: LocalServer,
) -> None:
    """Every bulk_delete is carried out by the server, and its answer lost on the way
    back; Prefect's client sends it again and hears ``deleted: []``. The count comes
    from reading the batch again, and runs outside the manifest stay, however many."""
    flow_name = f"history-{uuid.uuid4().hex[:8]}"
    specs = [RunSpec(flow_name, ago=timedelta(days=40)) for _ in range(9)]
    ids = await make_history(server.api_url, server.database_url, specs)
    async with PrefectClient(server.api_url) as client:
        flow = await client.read_flow_by_name(flow_name)
        selection = Selection(
            cutoff=datetime.now(UTC) - timedelta(days=30),
            states=("COMPLETED",),
            flow_ids=(flow.id,),
            limit=5,
        )
        manifest, _ = await make_manifest(Policy.single(selection), client, None)
    # One re-send by Prefect's client (its default is five, with seconds of backoff).
    with fault_proxy(server.api_url) as proxy, temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 1}):
        proxy.add(Rule(r"^POST /flow_runs/bulk_delete", "drop"))
        async with PrefectClient(proxy.api_url) as client:
            progress = await delete_runs(
                Policy.single(selection), manifest, client=client, batch_size=2
            )
        assert proxy.rules[0].hits >= 3  # every batch's answer was lost at least once
    left = await surviving(server.api_url, ids)
    assert set(ids) - left == set(manifest.ids(0, len(manifest)))
    assert (progress.deleted, progress.skipped, progress.failed) == (5, 0, 0)
