"""The retention policy on real servers: each target deleted exactly as its policy says.

Flow-run rules in order with keep-last-N and protection, on both databases and
both deletion paths; task runs without a flow run and orphans on the database
path (the API cannot delete them, and says so; events are in
``test_event_retention.py``). On the database path the preview's rows per
table equal what the deletion removed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
import sqlalchemy as sa
from prefect import states, task
from prefect.client.orchestration import PrefectClient
from prefect.server.database import orm_models

from flows.cleanup.flow import CleanupOutcome
from flows.devstack.server import LocalServer
from flows.history.seed import RunSpec, make_history, table
from helpers.cleanup import RunCleanup, surviving
from helpers.retention import artifact, collection, existing, insert, log, scalar

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)
database_only = pytest.mark.parametrize("path", ["database"])


async def test_rules_decide_in_order_keep_the_newest_per_deployment_and_never_protected_runs(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str, path: str
) -> None:
    async with PrefectClient(server.api_url) as client:
        flow_id = await client.create_flow_from_name(flow_name)
        a = await client.create_deployment(flow_id=flow_id, name="a")
        b = await client.create_deployment(flow_id=flow_id, name="b")
    specs = [
        *(RunSpec(flow_name, ago=DAY * day, deployment_id=a) for day in (10, 11, 12, 13, 14)),
        RunSpec(flow_name, ago=DAY * 15, deployment_id=a, tags=["KEEP"]),
        *(RunSpec(flow_name, ago=DAY * day, deployment_id=b) for day in (10, 11)),
        RunSpec(flow_name, "Failed", ago=DAY * 20),
        RunSpec(flow_name, "Failed", ago=DAY * 100),
        RunSpec(flow_name, ago=DAY * 3),
        RunSpec(flow_name, ago=DAY * 9),
    ]
    ids = await make_history(server.api_url, server.database_url, specs)

    report = await run_cleanup(
        rules=[
            {
                "name": "failures 90 days",
                "match": {"states": ["FAILED"], "flows": [flow_name]},
                "retention_days": 90,
            },
            {
                "name": "last 2 per deployment",
                "match": {"deployments": [f"{flow_name}/a", f"{flow_name}/b"]},
                "keep_last": 2,
            },
        ],
        retention_days=7,
        flows=[flow_name],
        approval="none",
    )

    going = {ids[2], ids[3], ids[4], ids[9], ids[11]}
    assert await surviving(server.api_url, ids) == set(ids) - going
    assert report.outcome is CleanupOutcome.DELETED
    preview = report.preview
    assert preview is not None
    assert [(r.name, r.runs, r.protected, r.kept_by_count) for r in preview.by_rule] == [
        ("failures 90 days", 1, 0, 0),
        ("last 2 per deployment", 3, 1, 4),
        ("default", 1, 0, 0),
    ]
    assert (preview.to_delete, preview.protected) == (5, 1)
    assert report.summary is not None
    assert report.summary.deleted == 5
    if path == "database":
        assert report.summary.rows == preview.rows_by_table()


async def test_a_run_claimed_by_an_earlier_rule_since_the_preview_is_not_deleted(
    server: LocalServer, flow_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between preview and deletion a run is tagged so that an earlier rule, which keeps
    it, now decides for it: the delete-time check follows that rule."""
    from flows.cleanup.config import RetentionConfig
    from flows.cleanup.deletion import delete_runs
    from flows.cleanup.manifest import make_manifest
    from flows.cleanup.rules import resolve_policy
    from helpers.cleanup import against

    ids = await make_history(
        server.api_url, server.database_url, [RunSpec(flow_name, ago=DAY * 40) for _ in range(3)]
    )
    config = RetentionConfig(
        rules=[{"match": {"tags": ["audit"], "flows": [flow_name]}, "retention_days": 365}],
        flows=[flow_name],
        retention_days=30,
    )
    async with against(server, "database", monkeypatch), PrefectClient(server.api_url) as client:
        from flows.database import Database

        database, _ = await Database.find(ids[0])
        assert database is not None
        policy = await resolve_policy(config, client)
        manifest, _ = await make_manifest(policy, client, database)
        assert set(manifest.ids(0, len(manifest))) == set(ids)
        await client.update_flow_run(ids[0], tags=["audit"])
        progress = await delete_runs(policy, manifest, client=client, database=database)

    assert (progress.deleted, progress.skipped) == (2, 1)
    assert await surviving(server.api_url, ids) == {ids[0]}


@task(name="janitor-test-task")
def _loose() -> None:
    pass


async def _loose_task_run(
    client: PrefectClient, final: states.State | None, tags: list[str] | None = None
) -> UUID:
    run = await client.create_task_run(
        _loose, None, dynamic_key=uuid.uuid4().hex, extra_tags=tags, state=states.Pending()
    )
    await client.set_task_run_state(run.id, states.Running(), force=True)
    if final is not None:
        await client.set_task_run_state(run.id, final, force=True)
    return run.id


@database_only
async def test_task_runs_without_a_flow_run_go_when_finished_old_and_unprotected(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    async with PrefectClient(server.api_url) as client:
        await client.create_flow_from_name(flow_name)
        old_completed = await _loose_task_run(client, states.Completed())
        old_failed = await _loose_task_run(client, states.Failed())
        old_kept = await _loose_task_run(client, states.Completed(), tags=["keep-me"])
        running = await _loose_task_run(client, None)
        recent = await _loose_task_run(client, states.Completed())
    old = [old_completed, old_failed, old_kept, running]
    task_run = table(orm_models.TaskRun)
    engine_rows = [log(None, DAY * 60, task_run_id=old_completed)]
    await insert(server.database_url, orm_models.Log, engine_rows)
    from flows.history.seed import database_engine

    engine = database_engine(server.database_url)
    async with engine.begin() as conn:  # sixty days old, as if made then
        await conn.execute(
            sa.update(task_run)
            .where(task_run.c.id.in_(old))
            .values(end_time=datetime.now(UTC) - DAY * 60, created=datetime.now(UTC) - DAY * 60)
        )
    await engine.dispose()

    report = await run_cleanup(
        task_runs={"retention_days": 30},
        flows=[flow_name],
        protected_tags=["keep*"],
        approval="none",
    )

    assert report.outcome is CleanupOutcome.DELETED
    left = await existing(server.database_url, orm_models.TaskRun, [*old, recent])
    assert left == {old_kept, running, recent}
    preview, summary = report.preview, report.summary
    assert preview is not None
    assert summary is not None
    (target,) = preview.targets
    assert target.key == "task_runs"
    assert target.rows["task_run"] >= 2
    assert target.rows["log"] >= 1
    assert summary.rows == preview.rows_by_table()


@database_only
async def test_orphans_go_only_when_their_flow_run_is_really_gone_and_collections_follow(
    server: LocalServer, run_cleanup: RunCleanup, flow_name: str
) -> None:
    (alive,) = await make_history(
        server.api_url, server.database_url, [RunSpec(flow_name, ago=DAY)]
    )
    gone = uuid.uuid4()
    key = f"report-{uuid.uuid4().hex[:8]}"
    orphan_logs = [log(gone, DAY * 10) for _ in range(3)]
    young_orphan = log(gone, timedelta(minutes=5))
    alive_log = log(alive, DAY * 10)
    await insert(server.database_url, orm_models.Log, [*orphan_logs, young_orphan, alive_log])
    survivor = artifact(key, alive, DAY * 12)
    orphaned_latest = artifact(key, gone, DAY * 10)
    alone = artifact(f"{key}-alone", gone, DAY * 10)
    await insert(server.database_url, orm_models.Artifact, [survivor, orphaned_latest, alone])
    await insert(
        server.database_url,
        orm_models.ArtifactCollection,
        [collection(orphaned_latest), collection(alone)],
    )

    report = await run_cleanup(
        orphans={"grace_hours": 24}, flows=[flow_name], retention_days=30, approval="none"
    )

    logs = [row["id"] for row in [*orphan_logs, young_orphan, alive_log]]
    assert await existing(server.database_url, orm_models.Log, logs) == {
        young_orphan["id"],
        alive_log["id"],
    }
    artifacts = [survivor["id"], orphaned_latest["id"], alone["id"]]
    assert await existing(server.database_url, orm_models.Artifact, artifacts) == {survivor["id"]}
    collections = table(orm_models.ArtifactCollection)
    latest = await scalar(
        server.database_url,
        sa.select(collections.c.latest_id).where(collections.c.key == key),
    )
    assert latest == survivor["id"]
    assert (
        await scalar(
            server.database_url,
            sa.select(sa.func.count()).where(collections.c.key == f"{key}-alone"),
        )
        == 0
    )
    preview, summary = report.preview, report.summary
    assert preview is not None
    assert summary is not None
    assert summary.rows == preview.rows_by_table()
    assert summary.rows["log"] >= 3
    assert summary.rows["artifact"] >= 2


async def test_without_the_database_the_other_targets_are_named_with_the_fix(
    sqlite_server: LocalServer, monkeypatch: pytest.MonkeyPatch, flow_name: str
) -> None:
    from flows.cleanup.config import RetentionConfig
    from flows.cleanup.flow import database_cleanup
    from helpers.cleanup import against, release_slot

    release_slot(sqlite_server.api_url)
    async with PrefectClient(sqlite_server.api_url) as client:
        await client.create_flow_from_name(flow_name)
    config = RetentionConfig(
        deletion="api",
        flows=[flow_name],
        task_runs={"retention_days": 30},
        events=[{"types": ["prefect.worker.*"], "retention_days": 7}],
        dry_run=True,
    )
    async with against(sqlite_server, "api", monkeypatch):
        report = await database_cleanup(config)

    assert report.preview is not None
    targets = {target.key: target for target in report.preview.targets}
    assert set(targets) == {"task_runs", "events"}
    for target in targets.values():
        assert target.rows == {}
        assert "PREFECT_SERVER_DATABASE_CONNECTION_URL" in target.needs_database


async def test_orphaned_task_runs_go_only_when_finished_and_unprotected(
    sqlite_server: LocalServer, monkeypatch: pytest.MonkeyPatch, flow_name: str
) -> None:
    """Task runs outlive their flow run only where foreign keys were off when it went
    (SQLite connections without the pragma): such orphans still obey the invariants."""
    from flows.cleanup.config import RetentionConfig
    from flows.cleanup.flow import database_cleanup
    from helpers.cleanup import against, release_slot

    (parent,) = await make_history(
        sqlite_server.api_url, sqlite_server.database_url, [RunSpec(flow_name, ago=DAY)]
    )
    async with PrefectClient(sqlite_server.api_url) as client:
        done = await client.create_task_run(_loose, parent, dynamic_key="done")
        await client.set_task_run_state(done.id, states.Completed(), force=True)
        live = await client.create_task_run(_loose, parent, dynamic_key="live")
        await client.set_task_run_state(live.id, states.Running(), force=True)
        kept = await client.create_task_run(_loose, parent, dynamic_key="kept", extra_tags=["keep"])
        await client.set_task_run_state(kept.id, states.Completed(), force=True)
    runs, tasks = table(orm_models.FlowRun), table(orm_models.TaskRun)
    from flows.history.seed import database_engine

    engine = database_engine(sqlite_server.database_url)  # no foreign_keys pragma: off
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(tasks)
            .where(tasks.c.flow_run_id == parent)
            .values(created=datetime.now(UTC) - DAY * 10)
        )
        await conn.execute(sa.delete(runs).where(runs.c.id == parent))
    await engine.dispose()

    release_slot(sqlite_server.api_url)
    config = RetentionConfig(
        orphans={"grace_hours": 24}, flows=[flow_name], approval="none", deletion="auto"
    )
    async with against(sqlite_server, "database", monkeypatch):
        report = await database_cleanup(config)

    left = await existing(
        sqlite_server.database_url, orm_models.TaskRun, [done.id, live.id, kept.id]
    )
    assert left == {live.id, kept.id}
    assert report.summary is not None
    assert report.preview is not None
    assert report.summary.rows == report.preview.rows_by_table()
    assert report.summary.rows["task_run"] >= 1
