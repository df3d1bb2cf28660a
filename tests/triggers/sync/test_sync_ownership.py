"""What sync may touch: owned automations only, pruning, --check and --only."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.servers import create_raw, server_automations, simple
from triggers import OWNER_TAG, Mode, Verb
from triggers.sync import sync_automations

pytestmark = pytest.mark.anyio


async def test_prune_deletes_only_owned(api_url: str, automations_dir: Path) -> None:
    (automations_dir / "keep.yaml").write_text(simple("keep"))
    (automations_dir / "gone.yaml").write_text(simple("gone"))
    await sync_automations(automations_dir, api_url=api_url, environ={})
    await create_raw(api_url, "someone-elses", ["team-b"])
    (automations_dir / "gone.yaml").unlink()

    report = await sync_automations(automations_dir, api_url=api_url, environ={})
    assert {(s.name, s.verb) for s in report.plan.steps} == {
        ("keep", Verb.UNCHANGED),
        ("gone", Verb.ORPHAN),
    }
    assert report.writes == 0
    assert set(await server_automations(api_url)) == {"keep", "gone", "someone-elses"}

    pruned = await sync_automations(automations_dir, api_url=api_url, environ={}, prune=True)
    assert {(s.name, s.verb) for s in pruned.plan.steps} == {
        ("keep", Verb.UNCHANGED),
        ("gone", Verb.DELETE),
    }
    assert set(await server_automations(api_url)) == {"keep", "someone-elses"}


async def test_unowned_clash_is_refused_and_left_alone(api_url: str, automations_dir: Path) -> None:
    theirs = await create_raw(api_url, "shared-name", ["team-b"])
    before = (await server_automations(api_url))["shared-name"]
    (automations_dir / "a.yaml").write_text(simple("shared-name") + "---\n" + simple("other"))

    outcome = await sync_automations(automations_dir, api_url=api_url, environ={})
    (conflict,) = outcome.plan.conflicts
    assert conflict.name == "shared-name"
    assert str(conflict.server_id) == theirs
    assert OWNER_TAG in conflict.note
    assert outcome.writes == 0, "a conflict stops the whole apply"
    assert await server_automations(api_url) == {"shared-name": before}


async def test_check_mode_reports_drift_without_writing(
    api_url: str, automations_dir: Path
) -> None:
    (automations_dir / "a.yaml").write_text(simple("checked"))
    drift = await sync_automations(automations_dir, api_url=api_url, environ={}, mode=Mode.CHECK)
    assert not drift.plan.in_sync
    assert drift.writes == 0
    await sync_automations(automations_dir, api_url=api_url, environ={})
    clean = await sync_automations(automations_dir, api_url=api_url, environ={}, mode=Mode.CHECK)
    assert clean.plan.in_sync


async def test_only_limits_the_scope(api_url: str, automations_dir: Path) -> None:
    (automations_dir / "a.yaml").write_text(simple("one") + "---\n" + simple("two"))
    outcome = await sync_automations(automations_dir, api_url=api_url, environ={}, only={"two"})
    assert [(s.name, s.verb) for s in outcome.plan.steps] == [("two", Verb.CREATE)]
    assert set(await server_automations(api_url)) == {"two"}
