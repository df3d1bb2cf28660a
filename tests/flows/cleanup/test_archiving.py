"""The archive as the cleanup's config and approval see it: on by default, shown in
every approval, refused where it cannot be kept, pruned with approval, kept in a
Prefect filesystem block; and a manifest too old to trust is refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.filesystems import RemoteFileSystem

from flows.archive import FsspecStore
from flows.archive.index import ArchiveIndex
from flows.archive.restore import restore
from flows.cleanup.flow import CleanupOutcome
from flows.database import Database
from flows.devstack.server import LocalServer
from flows.errors import CleanupError
from flows.history.seed import RunSpec, make_history
from helpers.cleanup import RunCleanup, against, events_of, names, paused_cleanups, surviving

pytestmark = pytest.mark.anyio

OLD = timedelta(days=40)


@pytest.fixture
def path() -> str:
    return "database"


async def test_the_archive_is_on_by_default_and_every_approval_request_says_where(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_HOME, temporary_settings

    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)] * 2)
    with temporary_settings(updates={PREFECT_HOME: str(tmp_path)}):
        running = asyncio.create_task(run_cleanup(flows=[flow_name], approval="human"))
        (paused,) = await paused_cleanups(server.api_url)
        async with PrefectClient(server.api_url) as client:
            await client.resume_flow_run(paused, run_input={"approve": True, "approver": "al"})
        report = await running

    assert report.outcome is CleanupOutcome.DELETED
    folder = tmp_path / "janitor" / "archive"
    (archive,) = list(folder.iterdir())
    assert report.summary is not None
    assert report.summary.archive == str(archive)
    events = await events_of(server.api_url, paused, "janitor.deletion.completed")
    (requested,) = [e for e in events if e["event"] == "janitor.approval.requested"]
    assert requested["payload"]["archive"] == f"Archive: every deleted row goes first to {folder}."
    assert requested["payload"]["archive_enabled"] is True
    assert await surviving(server.api_url, ids) == set()


async def test_opting_out_is_explicit_and_shown_in_the_approval(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    running = asyncio.create_task(run_cleanup(flows=[flow_name], approval="human", archive="none"))
    (paused,) = await paused_cleanups(server.api_url)
    async with PrefectClient(server.api_url) as client:
        await client.resume_flow_run(paused, run_input={"approve": True, "approver": "al"})
    report = await running

    assert report.summary is not None
    assert report.summary.archive == ""
    (requested,) = [
        e
        for e in await events_of(server.api_url, paused, "janitor.deletion.completed")
        if e["event"] == "janitor.approval.requested"
    ]
    assert "none (opted out)" in requested["payload"]["archive"]
    assert requested["payload"]["archive_enabled"] is False


async def test_through_the_api_with_the_archive_on_nothing_is_deleted_and_nobody_is_asked(
    server: LocalServer, flow_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flows.cleanup.config import RetentionConfig
    from flows.cleanup.flow import database_cleanup
    from helpers.cleanup import release_slot

    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    release_slot(server.api_url)
    config = RetentionConfig(
        deletion="api", flows=[flow_name], approval="human", archive=str(tmp_path)
    )
    async with against(server, "api", monkeypatch):
        with pytest.raises(CleanupError, match="set archive: none"):
            await database_cleanup(config)

    assert await surviving(server.api_url, ids) == set(ids)
    assert list(tmp_path.iterdir()) == []


async def test_a_manifest_older_than_its_lifetime_is_refused_and_nothing_goes(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str, tmp_path: Path
) -> None:
    ids = await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    running = asyncio.create_task(
        run_cleanup(
            flows=[flow_name],
            approval="human",
            manifest_max_age_seconds=1,
            archive=str(tmp_path),
        )
    )
    (paused,) = await paused_cleanups(server.api_url)
    await asyncio.sleep(1.5)
    async with PrefectClient(server.api_url) as client:
        await client.resume_flow_run(paused, run_input={"approve": True, "approver": "al"})

    with pytest.raises(CleanupError, match="fresh preview"):
        await running
    assert await surviving(server.api_url, ids) == set(ids)
    steps = names(await events_of(server.api_url, paused, "janitor.cleanup.failed"))
    assert "janitor.approval.granted" in steps
    assert "janitor.deletion.started" not in steps


async def test_archives_past_their_age_are_shown_approved_and_pruned(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str, tmp_path: Path
) -> None:
    old = ArchiveIndex(
        name="20260101T000000Z-oldoldol",
        made_at=datetime.now(UTC) - timedelta(days=100),
        prefect_version="3",
        dialect="sqlite",
    )
    (tmp_path / old.name).mkdir()
    (tmp_path / old.name / "index.json").write_text(old.model_dump_json())
    young = old.model_copy(
        update={"name": "20261201T000000Z-youngyou", "made_at": datetime.now(UTC)}
    )
    (tmp_path / young.name).mkdir()
    (tmp_path / young.name / "index.json").write_text(young.model_dump_json())
    stranger = tmp_path / "not-an-archive"
    stranger.mkdir()
    await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])

    report = await run_cleanup(
        flows=[flow_name], approval="none", archive={"folder": str(tmp_path), "keep_days": 90}
    )

    assert report.preview is not None
    assert report.preview.archive is not None
    assert [expired.name for expired in report.preview.archive.prune] == [old.name]
    assert report.summary is not None
    assert report.summary.archives_pruned == 1
    left = sorted(path.name for path in tmp_path.iterdir())
    assert old.name not in left
    # The young archive, the folder that is not an archive, and this cleanup's own.
    assert young.name in left
    assert "not-an-archive" in left
    assert len(left) == 3


async def test_an_archive_in_a_remote_filesystem_block_is_written_and_restored(
    server: LocalServer,
    run_cleanup: RunCleanup,
    flow_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block = f"archive-{flow_name}"
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        await RemoteFileSystem(basepath=f"memory://{block}").save(block, overwrite=True)
    ids = await make_history(
        server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD, task_runs=2, logs=2)]
    )

    report = await run_cleanup(
        flows=[flow_name], approval="none", archive={"block": f"remote-file-system/{block}"}
    )

    assert report.summary is not None
    assert report.summary.archive.startswith(f"block remote-file-system/{block}")
    assert await surviving(server.api_url, ids) == set()
    loaded: Any = await RemoteFileSystem.aload(block, client=PrefectClient(server.api_url))
    store = FsspecStore(f"remote-file-system/{block}", loaded.filesystem, loaded.basepath)
    (name,) = {path.split("/")[0] for path in await store.files()}
    async with against(server, "database", monkeypatch):
        restored = await restore(store, name, Database.configured())
    assert restored.restored["flow_run"] == 1
    assert restored.restored["task_run"] == 2
    assert await surviving(server.api_url, ids) == set(ids)


async def test_rows_that_came_to_qualify_while_someone_decided_are_not_deleted(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str, tmp_path: Path
) -> None:
    """Orphans are bound by their conditions and the count approved: two more orphan
    logs, made while the approval waits, stay for the next cleanup (which shows them)."""
    import uuid

    from prefect.server.database import orm_models

    from helpers.retention import existing, insert, log

    await make_history(server.api_url, server.database_url, [RunSpec(flow_name, ago=OLD)])
    gone = uuid.uuid4()
    shown = [log(gone, OLD) for _ in range(3)]
    await insert(server.database_url, orm_models.Log, shown)
    running = asyncio.create_task(
        run_cleanup(
            flows=[flow_name],
            approval="human",
            orphans={"grace_hours": 24},
            archive=str(tmp_path),
        )
    )
    (paused,) = await paused_cleanups(server.api_url)
    late = [log(gone, OLD) for _ in range(2)]
    await insert(server.database_url, orm_models.Log, late)
    async with PrefectClient(server.api_url) as client:
        await client.resume_flow_run(paused, run_input={"approve": True, "approver": "al"})
    report = await running

    assert report.summary is not None
    assert report.preview is not None
    (orphans,) = report.preview.targets
    # Other tests' old orphans may be on this server: never more than the preview counted.
    assert orphans.rows["log"] >= 3
    assert report.summary.rows["log"] == orphans.rows["log"]
    left = await existing(server.database_url, orm_models.Log, [r["id"] for r in shown + late])
    assert len(left) >= 2
