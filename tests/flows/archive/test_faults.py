"""The archive under faults: a store that fills up, a crash between a batch's archive
and its commit, a restore onto a server where some rows came back by other means, an
archive that does not fit. Nothing is lost and nothing is doubled."""

from __future__ import annotations

import errno
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import PrefectClient

from flows.archive import ArchiveWriter, Folder
from flows.archive.codec import decode
from flows.archive.index import PART_SUFFIX, ArchiveIndex
from flows.archive.restore import restore
from flows.cleanup.config import RetentionConfig
from flows.cleanup.deletion import DeletionFailed, DeletionProgress, delete_runs
from flows.cleanup.manifest import make_manifest
from flows.cleanup.rules import resolve_policy
from flows.database import Database
from flows.devstack.server import LocalServer
from flows.errors import RestoreRefused
from flows.history.seed import RunSpec, make_history
from helpers.archive import DAY, counts, snapshot
from helpers.cleanup import against, surviving

pytestmark = pytest.mark.anyio


class FailingFolder(Folder):
    """A real folder whose ``fail_at``-th batch file fails: the disk is full, or (with
    ``after_write``) the process dies right after the file is written, before the
    batch's transaction commits."""

    def __init__(self, root: Path, fail_at: int, after_write: bool = False) -> None:
        super().__init__(root)
        self.fail_at = fail_at
        self.after_write = after_write
        self.parts = 0

    async def write(self, path: str, data: bytes) -> None:
        if path.endswith(PART_SUFFIX):
            self.parts += 1
            if self.parts == self.fail_at:
                if not self.after_write:
                    raise OSError(errno.ENOSPC, "No space left on device")
                await super().write(path, data)
                raise RuntimeError("the cleanup died between the archive and the commit")
        await super().write(path, data)


@asynccontextmanager
async def archived_deletion(
    server: LocalServer, flow_name: str, store: Folder, monkeypatch: pytest.MonkeyPatch, runs: int
) -> AsyncIterator[Deletion]:
    """``runs`` old runs of ``flow_name``, their snapshot, and what it takes to delete
    them with ``store`` as the archive, as the cleanup does (manifest, policy, writer)."""
    ids = await make_history(
        server.api_url,
        server.database_url,
        [RunSpec(flow_name, ago=DAY * (40 + i), task_runs=2, logs=2) for i in range(runs)],
    )
    before = await snapshot(server.database_url, ids)
    config = RetentionConfig(flows=[flow_name], retention_days=30)
    async with against(server, "database", monkeypatch), PrefectClient(server.api_url) as client:
        database, _ = await Database.find(ids[0])
        assert database is not None
        policy = await resolve_policy(config, client)
        manifest, _ = await make_manifest(policy, client, database)
        writer = await ArchiveWriter.open(
            store, database, manifest_hash=manifest.hash, cleanup_flow_run_id=None
        )

        async def delete(**options: Any) -> DeletionProgress:
            return await delete_runs(
                policy, manifest, client=client, database=database, archive=writer, **options
            )

        yield Deletion(ids, before, database, writer, delete)


@dataclass
class Deletion:
    ids: list[UUID]
    before: dict[str, list[dict[str, Any]]]
    database: Database
    writer: ArchiveWriter
    delete: Callable[..., Awaitable[DeletionProgress]]


@pytest.mark.parametrize("after_write", [False, True], ids=["disk-full", "crash-after-archive"])
async def test_a_batch_whose_archive_fails_is_not_deleted_and_a_restore_loses_and_doubles_nothing(
    server: LocalServer,
    flow_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    after_write: bool,
) -> None:
    store = FailingFolder(tmp_path, fail_at=2, after_write=after_write)

    async with archived_deletion(server, flow_name, store, monkeypatch, runs=6) as deletion:
        with pytest.raises(DeletionFailed) as failed:
            await deletion.delete(batch_size=2)
    ids, failure, name = deletion.ids, failed.value, deletion.writer.index.name

    # The first batch went with its archive; the second stopped the deletion, whole.
    assert failure.progress.deleted == 2
    survivors = await surviving(server.api_url, ids)
    assert len(survivors) == 4
    if not after_write:
        assert "No space left on device" in str(failure)
        assert "archive: none" in str(failure)
    parts = sorted((tmp_path / name / "flow_runs").iterdir())
    assert len(parts) == (2 if after_write else 1)
    archived = {
        row["id"]
        for part in parts
        for table, row in map(decode, gzip.decompress(part.read_bytes()).splitlines())
        if table == "flow_run"
    }
    gone = set(ids) - survivors
    assert {str(run_id) for run_id in gone} <= archived
    assert len(archived) == (4 if after_write else 2)

    async with against(server, "database", monkeypatch):
        report = await restore(Folder(tmp_path), name, Database.configured())
    assert report.restored["flow_run"] == 2
    assert report.present.get("flow_run", 0) == (2 if after_write else 0)
    assert await snapshot(server.database_url, ids) == deletion.before


async def test_a_restore_leaves_rows_that_came_back_by_other_means_and_puts_back_the_rest(
    server: LocalServer, flow_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Folder(tmp_path)
    async with archived_deletion(server, flow_name, store, monkeypatch, runs=3) as deletion:
        ids, name = deletion.ids, deletion.writer.index.name
        await deletion.delete()
        await deletion.writer.close()
        assert await surviving(server.api_url, ids) == set()

        first = await restore(store, name, deletion.database, runs=[ids[1]])
        assert await surviving(server.api_url, ids) == {ids[1]}
        rest = await restore(store, name, deletion.database)

    one = counts(await snapshot(server.database_url, [ids[1]]))
    assert {t: n for t, n in first.restored.items() if t != "flow"} == one
    assert {t: n for t, n in rest.present.items() if t != "flow"} == one
    assert await snapshot(server.database_url, ids) == deletion.before


async def test_an_archive_from_another_schema_or_with_a_broken_file_is_refused_with_the_reason(
    sqlite_server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = ArchiveIndex(
        name="20261201T000000Z-abcdabcd",
        prefect_version="9.9.9",
        dialect="sqlite",
        tables={"flow_run": ["id", "name", "flux_capacitor"]},
        targets={"flow_runs": {"parts": 1, "rows": {"flow_run": 1}}},
    )
    folder = tmp_path / index.name
    (folder / "flow_runs").mkdir(parents=True)
    (folder / "index.json").write_text(index.model_dump_json())
    (folder / "flow_runs" / f"000001{PART_SUFFIX}").write_bytes(b"not gzip")
    async with against(sqlite_server, "database", monkeypatch):
        database = Database.configured()
        with pytest.raises(RestoreRefused, match="flow_run has no column flux_capacitor"):
            await restore(Folder(tmp_path), index.name, database)
        columns = [column.name for column in database.db.FlowRun.__table__.columns]
        fitting = index.model_copy(update={"tables": {"flow_run": ["id", "name"]}})
        (folder / "index.json").write_text(fitting.model_dump_json())
        with pytest.raises(RestoreRefused, match=r"flow_run\.flow_id .*required here"):
            await restore(Folder(tmp_path), index.name, database)
        whole = index.model_copy(update={"tables": {"flow_run": columns}})
        (folder / "index.json").write_text(whole.model_dump_json())
        with pytest.raises(RestoreRefused, match=r"000001\.jsonl\.gz cannot be read"):
            await restore(Folder(tmp_path), index.name, database)
        with pytest.raises(RestoreRefused, match="holds no events"):
            await restore(Folder(tmp_path), index.name, database, targets=["events"])
        with pytest.raises(RestoreRefused, match="no archive 'missing'"):
            await restore(Folder(tmp_path), "missing", database)
