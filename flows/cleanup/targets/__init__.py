"""Everything a cleanup can delete besides flow runs, one module per target.

``task_runs``: task runs made outside any flow run. ``events``: events and
their resources by type. ``orphans``: rows whose flow run is gone. Flow runs
themselves (``flow_runs``) go by the approved manifest; ``batches`` and
``artifacts`` are what the targets share.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flows.cleanup.config import RetentionConfig
from flows.cleanup.targets.events import Events, event_retentions, event_types
from flows.cleanup.targets.orphans import Orphans
from flows.cleanup.targets.target import Rows, Target
from flows.cleanup.targets.task_runs import TaskRunsWithoutFlow
from flows.database import Database

__all__ = ["Events", "Orphans", "Rows", "Target", "TaskRunsWithoutFlow", "make_targets"]


async def make_targets(
    config: RetentionConfig,
    at: datetime,
    protected_tags: tuple[str, ...],
    database: Database,
) -> list[Target]:
    """The targets the config asks for, with cutoffs fixed at ``at`` (the preview)."""
    targets: list[Target] = []
    if config.task_runs is not None:
        targets.append(
            TaskRunsWithoutFlow(
                cutoff=at - timedelta(days=config.task_runs.retention_days),
                states=tuple(state.value for state in config.task_runs.states),
                protected_tags=protected_tags,
            )
        )
    if config.events:
        retentions = event_retentions(config.events, await event_types(database), at)
        targets.append(Events(tuple(retentions)))
    if config.orphans is not None:
        targets.append(
            Orphans(
                before=at - timedelta(hours=config.orphans.grace_hours),
                protected_tags=protected_tags,
            )
        )
    return targets
