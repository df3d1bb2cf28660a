"""Semantic equality of automations, so a server round trip never shows false drift.

Both sides go through Prefect's own ``AutomationCore`` (defaults filled in),
then sets and tag lists are sorted, single-value label lists collapsed and
keys ordered. What remains different is a real change, reported per field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.events.schemas.automations import AutomationCore

_UNORDERED = ("expect", "after", "for_each")


@dataclass(frozen=True)
class Change:
    """One field that differs: ``path`` as people read it, old and new values."""

    path: str
    old: Any
    new: Any


def canonical(core: AutomationCore) -> dict[str, Any]:
    """Normalised by position, never by key name: a ``tags`` list inside
    run-deployment parameters keeps its order, the automation's own tags do not."""
    data = core.model_dump(mode="json", include=set(AutomationCore.model_fields))
    if data.get("owner_resource") is None:
        data.pop("owner_resource", None)
    data["tags"] = sorted(set(data.get("tags") or []))
    data["trigger"] = _trigger(data["trigger"])
    return data


def from_server(raw: dict[str, Any]) -> AutomationCore:
    """The server's automation as the same model the declaration compiles to."""
    return AutomationCore.model_validate(raw)


def _trigger(trigger: dict[str, Any]) -> dict[str, Any]:
    result = dict(trigger)
    for key in _UNORDERED:
        if isinstance(result.get(key), list):
            result[key] = sorted(set(result[key]))
    if isinstance(result.get("match"), dict):
        result["match"] = _labels(result["match"])
    related = result.get("match_related")
    if isinstance(related, dict):
        result["match_related"] = _labels(related)
    elif isinstance(related, list):
        result["match_related"] = [_labels(item) for item in related]
    if isinstance(result.get("triggers"), list):
        result["triggers"] = [_trigger(child) for child in result["triggers"]]
    return result


def _labels(labels: dict[str, Any]) -> dict[str, Any]:
    """Label values: a one-item list means the same as the plain string."""
    normal: dict[str, Any] = {}
    for key, value in labels.items():
        if isinstance(value, list):
            values = sorted(set(map(str, value)))
            normal[key] = values[0] if len(values) == 1 else values
        else:
            normal[key] = value
    return normal


def diff(old: Any, new: Any, path: str = "") -> list[Change]:
    """Field-level differences, deepest first reported at the changed leaf."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in sorted(set(old) | set(new), key=str):
            child = f"{path}.{key}" if path else str(key)
            if key not in old:
                changes.append(Change(child, None, new[key]))
            elif key not in new:
                changes.append(Change(child, old[key], None))
            else:
                changes.extend(diff(old[key], new[key], child))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            change
            for index, (a, b) in enumerate(zip(old, new, strict=True))
            for change in diff(a, b, f"{path}[{index}]")
        ]
    if old != new:
        return [Change(path, old, new)]
    return []
