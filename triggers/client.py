"""Prefect API access for sync: every request counted, every failure one clear line.

Built on Prefect's own client (auth settings, TLS, retries on 429/503), so sync
behaves like the ``prefect`` CLI against the same profile. Requests are counted
by method and path, which is how tests prove a no-op sync writes nothing.
"""

from __future__ import annotations

from collections import Counter
from types import TracebackType
from typing import Any

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
_READ_SUFFIXES = ("/filter", "/count", "/paginate")


def is_write(method: str, path: str) -> bool:
    """POSTs to filter/count endpoints are reads; every other non-GET is a write."""
    return method != "GET" and not path.rstrip("/").endswith(_READ_SUFFIXES)


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
        )
        self._client._client.event_hooks["request"].append(self._count)

    async def _count(self, request: httpx.Request) -> None:
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
            response = await self._client._client.request(method, path, json=json)
        except httpx.HTTPStatusError as exc:
            raise self._translate(exc.response, method, path) from exc
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
            raise self._translate(response, method, path)
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

    def _translate(self, response: httpx.Response, method: str, path: str) -> SyncError:
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
