"""Artifacts go with a collection kept right, as Prefect's own model does it.

Prefect keeps one ``artifact_collection`` row per key pointing at the newest
artifact of that key. Deleting artifacts in bulk, as a batch does, can leave
a collection pointing at nothing (the UI's artifact page then errors); so in
the same transaction each touched collection moves to the newest artifact
left with its key, or goes when none is left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flows.archive import archived
from flows.cleanup.targets.batches import chunked, delete_by, delete_where

if TYPE_CHECKING:
    from prefect.server.database import PrefectDBInterface


async def delete_artifacts(
    session: Any, db: PrefectDBInterface, column: Any, ids: list[Any]
) -> int:
    """Delete artifacts and keep their collections right: a collection whose latest
    artifact went points at the newest one left with its key, or goes with it."""
    import sqlalchemy as sa

    keys: set[str] = set()
    for part in chunked(ids):
        found = await session.execute(
            sa.select(db.Artifact.key).where(column.in_(part), db.Artifact.key.is_not(None))
        )
        keys.update(found.scalars().all())
    deleted = await delete_by(session, column, ids)
    if keys:
        await reconcile_collections(session, db, sorted(keys))
    return deleted


async def reconcile_collections(session: Any, db: PrefectDBInterface, keys: list[str]) -> int:
    """Collections of ``keys`` whose latest artifact is gone: re-pointed or removed."""
    import sqlalchemy as sa

    fixed = 0
    for part in chunked(keys):
        stale = (
            await session.execute(
                sa.select(db.ArtifactCollection.id, db.ArtifactCollection.key).where(
                    db.ArtifactCollection.key.in_(part),
                    ~sa.exists().where(db.Artifact.id == db.ArtifactCollection.latest_id),
                )
            )
        ).all()
        for collection_id, key in stale:
            newest = (
                await session.execute(
                    sa.select(db.Artifact)
                    .where(db.Artifact.key == key)
                    .order_by(db.Artifact.created.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            where = db.ArtifactCollection.id == collection_id
            if newest is None:
                await delete_where(session, db.ArtifactCollection, where)
            else:
                await archived(session, db.ArtifactCollection, where)  # as it was, for a restore
                await session.execute(
                    sa.update(db.ArtifactCollection)
                    .where(where)
                    .values(
                        latest_id=newest.id,
                        flow_run_id=newest.flow_run_id,
                        task_run_id=newest.task_run_id,
                        type=newest.type,
                        data=newest.data,
                        description=newest.description,
                        metadata_=newest.metadata_,
                    )
                )
            fixed += 1
    return fixed
