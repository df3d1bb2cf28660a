"""Turning a cleanup's config into a selection: the deployment's protection always holds."""

from __future__ import annotations

import uuid

import pytest
from prefect.client.orchestration import PrefectClient

from flows.cleanup.config import RetentionConfig
from flows.cleanup.selection import resolve
from flows.devstack.server import LocalServer

pytestmark = pytest.mark.anyio


async def test_the_deployments_protected_tags_survive_an_automations_own_config(
    sqlite_server: LocalServer,
) -> None:
    """An automation's run-deployment passes a whole ``config``, which replaces the
    deployment's; the deployment's protected tags are added back, never dropped."""
    async with PrefectClient(sqlite_server.api_url) as client:
        flow_id = await client.create_flow_from_name(f"database-cleanup-{uuid.uuid4().hex[:6]}")
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name="guarded",
            parameters={"config": {"protected_tags": ["audit*", "Legal"]}},
        )
        from_automation = RetentionConfig(protected_tags=["keep"], approval="none")
        selection = await resolve(from_automation, client, deployment_id=deployment_id)
        alone = await resolve(from_automation, client)

    assert selection.protected_tags == ("keep", "audit*", "Legal")
    assert alone.protected_tags == ("keep",)
    assert selection.is_protected(["AUDIT-2026"])
    assert selection.is_protected(["legal"])
    assert not selection.is_protected(["nightly"])


def test_a_protected_tag_with_brackets_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"only \* and \? are wildcards; remove \[ \]"):
        RetentionConfig(protected_tags=["keep[0-9]"])
