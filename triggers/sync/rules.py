"""Publishing metric rules for the probe: planned, diffed and written like automations.

A rule's variable is sync's own: it carries the ownership tag, a variable of
the same name without the tag is a conflict, and a rule no longer declared is
deleted with its automation's declaration (or left as an orphan until
``--prune`` when its automation is gone from the folder, like the automation).
"""

from __future__ import annotations

from typing import Any

from triggers.api import Api
from triggers.load.bundle import Bundle
from triggers.metrics.rule import RULE_VARIABLE_PREFIX
from triggers.spec.automation import OWNER_TAG
from triggers.sync.compare import diff
from triggers.sync.plan import Step, Verb

RULE_TAG = "janitor:metric-rule"


async def fetch_rules(api: Api) -> dict[str, dict[str, Any]]:
    """Every rule variable on the server, owned or not, by variable name."""
    return {raw["name"]: raw for raw in await api.variables(RULE_VARIABLE_PREFIX)}


def rule_steps(
    bundle: Bundle,
    server: dict[str, dict[str, Any]],
    *,
    prune: bool,
    only: set[str] | None,
) -> list[Step]:
    declared_names = {a.spec.name for a in bundle.automations}
    steps: list[Step] = []
    wanted: set[str] = set()
    for rule, declared in bundle.rules(only):
        wanted.add(rule.variable)
        desired = rule.published()
        current = server.get(rule.variable)
        if current is None:
            steps.append(Step("rule", rule.id, Verb.CREATE, declared=declared, desired=desired))
        elif OWNER_TAG not in current.get("tags", []):
            steps.append(
                Step(
                    "rule",
                    rule.id,
                    Verb.CONFLICT,
                    note=f"a variable named {rule.variable!r} exists without the {OWNER_TAG} "
                    "tag; sync will not touch it. Delete it, or give the metric trigger "
                    "another `id:`",
                    declared=declared,
                )
            )
        else:
            changes = diff(current.get("value"), desired)
            steps.append(
                Step(
                    "rule",
                    rule.id,
                    Verb.UPDATE if changes else Verb.UNCHANGED,
                    changes=changes,
                    declared=declared,
                    desired=desired,
                )
            )
    for name, raw in sorted(server.items()):
        if name in wanted or OWNER_TAG not in raw.get("tags", []):
            continue
        value = raw.get("value")
        owner = value.get("automation") if isinstance(value, dict) else None
        if only and owner not in only:
            continue
        rule_id = name.removeprefix(RULE_VARIABLE_PREFIX)
        if owner in declared_names:
            steps.append(
                Step("rule", rule_id, Verb.DELETE, note=f"no longer declared by {owner!r}")
            )
        else:
            steps.append(
                Step(
                    "rule",
                    rule_id,
                    Verb.DELETE if prune else Verb.ORPHAN,
                    note=f"its automation {owner!r} is no longer declared"
                    + ("" if prune else "; sync --prune deletes it"),
                )
            )
    return steps


async def apply_rule(api: Api, step: Step) -> None:
    name = RULE_VARIABLE_PREFIX + step.name
    tags = [OWNER_TAG, RULE_TAG]
    if step.verb == Verb.CREATE:
        await api.create_variable(name, step.desired, tags)
    elif step.verb == Verb.UPDATE:
        await api.update_variable(name, step.desired, tags)
    elif step.verb == Verb.DELETE:
        await api.delete_variable(name)
