"""Raw HTTP to the Prefect API, in one place.

Prefect's public client has no method for some endpoints the bundle needs
(``POST /flow_runs/bulk_delete``, task-run counts and run history with raw
filters, variables filtered by name and tag), and sync compares the server's
own JSON with its declarations. Every path the bundle sends lives in this
module, and every request goes through ``PrefectClient.request`` (public,
with Prefect's auth settings, TLS and retries on 429/503), so nothing else
reaches into the client's private transport.

``Api`` is sync's view: every request counted by method and path (how tests
prove a no-op sync writes nothing) and every failure one clear line with the
fix. The functions below it are for the flows, which already hold a client.
"""

from __future__ import annotations

from collections import Counter
from types import TracebackType
from typing import Any, Literal, cast
from uuid import UUID

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL

from triggers.errors import (
    ServerAuthError,
    ServerFailed,
    ServerRejected,
    ServerUnreachable,
    SyncError,
)

PAGE = 200
Filterable = Literal[
    "automations",
    "block_documents",
    "deployments",
    "flows",
    "variables",
    "work_pools",
    "work_queues",
]
_READ_SUFFIXES = ("/filter", "/count", "/paginate")
_RETRIED = {408, 429, 502, 503}
"""Statuses Prefect's client retries by itself."""


def is_write(method: str, path: str) -> bool:
    """POSTs to filter/count endpoints are reads; every other non-GET is a write."""
    return method != "GET" and not path.rstrip("/").endswith(_READ_SUFFIXES)


async def send(client: PrefectClient, method: str, path: str, json: Any = None) -> httpx.Response:
    """One request through the client's public ``request``; raises ``httpx.HTTPStatusError``
    for an error status (after Prefect's own retries on 429 and 503)."""
    # ``request`` is typed with the routes Prefect's own client uses; bulk_delete is not one.
    return await client.request(cast(Any, method), cast(Any, path), json=json)


async def _post(client: PrefectClient, path: str, body: dict[str, Any]) -> Any:
    return (await send(client, "POST", path, body)).json()


async def count_runs(
    client: PrefectClient, runs: Literal["flow_runs", "task_runs"], body: dict[str, Any]
) -> int:
    """``POST /{runs}/count`` with a raw filter body (the client's task-run count takes
    no flow-run filter, and the probe's queries arrive as JSON)."""
    return int(await _post(client, f"/{runs}/count", body))


async def flow_run_lateness(client: PrefectClient, body: dict[str, Any]) -> float | None:
    """``POST /flow_runs/lateness``: average seconds late, as the UI's dashboard shows it."""
    value = await _post(client, "/flow_runs/lateness", body)
    return None if value is None else float(value)


async def flow_run_history(client: PrefectClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    """``POST /flow_runs/history``: runs per state over time intervals, as the dashboard."""
    history: list[dict[str, Any]] = await _post(client, "/flow_runs/history", body)
    return history


async def bulk_delete_flow_runs(
    client: PrefectClient, flow_runs: dict[str, Any], limit: int
) -> list[UUID] | None:
    """``POST /flow_runs/bulk_delete`` (Prefect 3.7+, at most 50 a call on 3.8); the ids the
    server deleted, or ``None`` on a server without the endpoint (404/405).

    No client method exists for it. Transport errors propagate: the caller decides
    what a lost answer means for its counts.
    """
    try:
        response = await send(
            client, "POST", "/flow_runs/bulk_delete", {"flow_runs": flow_runs, "limit": limit}
        )
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code in (404, 405):
            return None
        raise
    return [UUID(value) for value in response.json().get("deleted", [])]


async def filter_variables(
    client: PrefectClient, prefix: str, tags: list[str] | None = None
) -> list[dict[str, Any]]:
    """Variables whose name starts with ``prefix`` (and that carry every tag of ``tags``).

    The client's ``read_variables`` filters on nothing, and a server holds any number.
    """
    found: list[dict[str, Any]] = []
    variables: dict[str, Any] = {"name": {"like_": prefix}}
    if tags:
        variables["tags"] = {"all_": tags}
    while True:
        page = await _post(
            client,
            "/variables/filter",
            {"variables": variables, "sort": "NAME_ASC", "limit": PAGE, "offset": len(found)},
        )
        found.extend(page)
        if len(page) < PAGE:
            return [raw for raw in found if raw["name"].startswith(prefix)]


class Api:
    """An open connection to one Prefect server."""

    def __init__(self, api_url: str | None = None) -> None:
        url = api_url or PREFECT_API_URL.value()
        if not url:
            raise ServerUnreachable(
                "PREFECT_API_URL is not set",
                "export PREFECT_API_URL=http://127.0.0.1:4200/api (your server's API URL)",
            )
        self.url = url.rstrip("/")
        self.requests: Counter[str] = Counter()
        self._client = PrefectClient(
            self.url,
            api_key=PREFECT_API_KEY.value(),
            auth_string=PREFECT_API_AUTH_STRING.value(),
            httpx_settings={"event_hooks": {"response": [self._count]}},
        )

    async def _count(self, response: httpx.Response) -> None:
        """Count each request once: an answer Prefect's client will retry (a busy SQLite
        server's 503, say) is not the request's answer, its last attempt's is."""
        if response.status_code in _RETRIED:
            return
        request = response.request
        path = request.url.path
        prefix = httpx.URL(self.url).path.rstrip("/")
        self.requests[f"{request.method} {path.removeprefix(prefix) or '/'}"] += 1

    @property
    def reads(self) -> int:
        return sum(n for key, n in self.requests.items() if not is_write(*key.split(" ", 1)))

    @property
    def writes(self) -> int:
        return sum(n for key, n in self.requests.items() if is_write(*key.split(" ", 1)))

    @property
    def client(self) -> PrefectClient:
        return self._client

    async def __aenter__(self) -> Api:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    async def request(self, method: str, path: str, json: Any = None) -> Any:
        """Send one request; the parsed JSON answer, or a ``SyncError`` that says what to do."""
        try:
            response = await send(self._client, method, path, json)
        except httpx.HTTPStatusError as exc:
            raise self.translate(exc.response, method, path) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachable(
                f"cannot reach the Prefect API at {self.url} ({type(exc).__name__})",
                "start the server (prefect server start) or fix PREFECT_API_URL",
            ) from exc
        except httpx.HTTPError as exc:
            raise ServerUnreachable(
                f"the Prefect API at {self.url} did not answer {method} {path}: "
                f"{type(exc).__name__}",
                "check the server's health (curl $PREFECT_API_URL/health) and retry",
            ) from exc
        except ValueError as exc:  # a non-API answer while fetching the CSRF token
            raise self._not_an_api(method, path) from exc
        if response.status_code >= 400:
            raise self.translate(response, method, path)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise self._not_an_api(method, path) from exc

    def _not_an_api(self, method: str, path: str) -> SyncError:
        return ServerUnreachable(
            f"{self.url} did not answer {method} {path} like a Prefect API",
            "PREFECT_API_URL must be the server's API URL, ending in /api "
            "(e.g. http://127.0.0.1:4200/api)",
        )

    async def pages(self, path: str, body: dict[str, Any]) -> list[Any]:
        """All items of a filter endpoint, page by page."""
        items: list[Any] = []
        offset = 0
        while True:
            page = await self.request("POST", path, {**body, "limit": PAGE, "offset": offset})
            if not isinstance(page, list) or not all(isinstance(item, dict) for item in page):
                raise self._not_an_api("POST", path)
            items.extend(page)
            if len(page) < PAGE:
                return items
            offset += PAGE

    # Sync's endpoints. Filters take Prefect's JSON filter bodies.

    async def filter(self, objects: Filterable, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Every ``objects`` the filter body matches (``POST /{objects}/filter``, paged)."""
        return await self.pages(f"/{objects}/filter", body)

    async def create_automation(self, body: dict[str, Any]) -> UUID:
        created = await self.request("POST", "/automations/", body)
        return UUID(created["id"])

    async def replace_automation(self, automation_id: UUID, body: dict[str, Any]) -> None:
        await self.request("PUT", f"/automations/{automation_id}", body)

    async def delete_automation(self, automation_id: UUID) -> None:
        await self.request("DELETE", f"/automations/{automation_id}")

    async def variables(self, prefix: str) -> list[dict[str, Any]]:
        """Every variable whose name starts with ``prefix``, owned or not."""
        found = await self.filter(
            "variables", {"variables": {"name": {"like_": prefix}}, "sort": "NAME_ASC"}
        )
        return [raw for raw in found if raw["name"].startswith(prefix)]

    async def create_variable(self, name: str, value: Any, tags: list[str]) -> None:
        await self.request("POST", "/variables/", {"name": name, "value": value, "tags": tags})

    async def update_variable(self, name: str, value: Any, tags: list[str]) -> None:
        await self.request("PATCH", f"/variables/name/{name}", {"value": value, "tags": tags})

    async def delete_variable(self, name: str) -> None:
        await self.request("DELETE", f"/variables/name/{name}")

    def translate(self, response: httpx.Response, method: str, path: str) -> SyncError:
        status = response.status_code
        detail = _detail(response)
        where = f"{method} {path}"
        if status == 401 or (status == 403 and "auth" in detail.lower()):
            return ServerAuthError(
                f"the Prefect API refused the credentials ({status}) on {where}",
                "set PREFECT_API_KEY or PREFECT_API_AUTH_STRING to match the server",
            )
        if status == 403:
            return ServerAuthError(
                f"the Prefect API forbade {where} (403): {detail}",
                "check the account's permissions, or the name the server refused",
            )
        if status == 404 and path in ("/automations/", "/automations/filter"):
            return ServerRejected(
                f"{self.url} has no automations API (404 on {where})",
                "point PREFECT_API_URL at a Prefect 3 server's /api URL",
            )
        if status < 500:
            return ServerRejected(
                f"the server rejected {where} ({status}): {detail}",
                "fix the declaration it names, or upgrade the server if the field is new",
            )
        return ServerFailed(
            f"the server failed on {where} ({status}): {detail}",
            "check the server's logs; a re-run converges once it is healthy",
        )


def _detail(response: httpx.Response) -> str:
    """The server's reason in one line, without echoing what was sent.

    Prefect's 422 answers carry the request body and each offending input;
    those may hold secrets (a block's webhook URL), so only locations and
    messages are kept.
    """
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}"
    if not isinstance(body, dict):
        return response.reason_phrase or f"HTTP {response.status_code}"
    detail = body.get("exception_detail", body.get("detail"))
    if isinstance(detail, list):
        parts = []
        for item in detail[:3]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in (item.get("loc") or ())[1:])
                message = str(item.get("msg", "")).replace("\n", " ")
                parts.append(f"{loc}: {message}" if loc else message)
        more = f" (+{len(detail) - 3} more)" if len(detail) > 3 else ""
        return "; ".join(parts)[:400] + more
    if isinstance(detail, str):
        return detail.replace("\n", " ")[:400]
    return str(body.get("exception_message") or response.reason_phrase)[:400]
