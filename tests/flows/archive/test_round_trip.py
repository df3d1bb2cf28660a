"""Archive, delete, restore: every restored row equals the original in every column.

On both databases, a real cleanup (in-process, archive on by default) deletes
realistic history (runs with states, task runs, logs, artifacts, a run input;
events with their resources) and archives it; ``restore`` puts it back
through Prefect's own tables; a snapshot of every column matches the one
taken before. A second restore puts nothing back twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.archive import Folder
from flows.archive.index import ArchiveIndex
from flows.archive.restore import restore
from flows.cleanup.flow import CleanupOutcome
from flows.database import Database
from flows.devstack.server import LocalServer
from helpers.archive import counts, rich_history, snapshot
from helpers.cleanup import RunCleanup, against, surviving

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("path", ["database"])]


async def test_a_restore_puts_back_every_row_of_every_target_exactly_as_it_was_and_only_once(
    server: LocalServer,
    run_cleanup: RunCleanup,
    flow_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    history = await rich_history(server.database_url, server.api_url, flow_name)
    old, events = history["old"], history["events"]
    before = await snapshot(server.database_url, old, events)

    report = await run_cleanup(
        flows=[flow_name],
        retention_days=30,
        approval="none",
        events=[{"types": [history["event_type"]], "retention_days": 7}],
        archive={"folder": str(tmp_path)},
    )

    assert report.outcome is CleanupOutcome.DELETED
    assert await surviving(server.api_url, [*old, history["recent"]]) == {history["recent"]}
    assert counts(await snapshot(server.database_url, old, events)) == {}
    summary = report.summary
    assert summary is not None
    assert summary.archive.startswith(str(tmp_path))
    (name,) = [path.name for path in tmp_path.iterdir()]
    index = ArchiveIndex.model_validate_json((tmp_path / name / "index.json").read_text())
    assert index.complete
    assert set(index.targets) == {"flow_runs", "events"}
    archived: dict[str, int] = {}
    for entry in index.targets.values():
        for table, rows in entry.rows.items():
            archived[table] = archived.get(table, 0) + rows
    # Every deleted row was archived (and the runs' flow, which stays, with them).
    assert {table: archived.get(table, 0) for table in summary.rows} == summary.rows
    assert archived["flow"] == 1

    async with against(server, "database", monkeypatch):
        database = Database.configured()
        restored = await restore(Folder(tmp_path), name, database)
        again = await restore(Folder(tmp_path), name, database)

    expected = counts(before)
    assert {t: n for t, n in restored.restored.items() if t in expected} == expected
    assert restored.present == {"flow": 1}
    after = await snapshot(server.database_url, old, events)
    for table_name, originals in before.items():
        for row, back in zip(originals, after[table_name], strict=True):
            assert {k: v for k, v in back.items() if row[k] != v} == {}, table_name
    assert after == before
    assert again.restored == {}
    assert {t: n for t, n in again.present.items() if t != "flow"} == {
        t: n for t, n in restored.restored.items() if t != "flow"
    }
    assert await surviving(server.api_url, old) == set(old)
