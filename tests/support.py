"""Helpers shared by tests that talk to a real server."""

from __future__ import annotations

from typing import Any

import httpx


def simple(name: str, threshold: int = 1) -> str:
    """The smallest useful automation, as YAML."""
    return (
        f"name: {name}\ntrigger: {{expect: prefect.flow-run.Failed, threshold: {threshold}}}\n"
        "actions: [{type: do-nothing}]\n"
    )


async def server_automations(api_url: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post("/automations/filter", json={})
        return {a["name"]: a for a in response.json()}


async def create_raw(api_url: str, name: str, tags: list[str]) -> str:
    """An automation made behind sync's back, as another team would."""
    body = {
        "name": name,
        "tags": tags,
        "trigger": {"type": "event", "expect": ["x.y"], "posture": "Reactive"},
        "actions": [{"type": "do-nothing"}],
    }
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post("/automations/", json=body)
        response.raise_for_status()
        return str(response.json()["id"])
