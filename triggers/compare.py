"""Semantic equality of automations, so a server round trip never shows false drift.

Both sides go through Prefect's own ``AutomationCore`` (defaults filled in),
then sets and tag lists are sorted, single-value label lists collapsed and
keys ordered. What remains different is a real change, reported per field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.events.schemas.automations import AutomationCore

_UNORDERED = {"expect", "after", "for_each", "tags"}
_LABEL_MAPS = {"match", "match_related"}


@dataclass(frozen=True)
class Change:
    """One field that differs: ``path`` as people read it, old and new values."""

    path: str
    old: Any
    new: Any


def canonical(core: AutomationCore) -> dict[str, Any]:
    data = core.model_dump(mode="json", include=set(AutomationCore.model_fields))
    if data.get("owner_resource") is None:
        data.pop("owner_resource", None)
    result = _canon(data, "")
    assert isinstance(result, dict)
    return result


def from_server(raw: dict[str, Any]) -> AutomationCore:
    """The server's automation as the same model the declaration compiles to."""
    return AutomationCore.model_validate(raw)


def _canon(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        if key in _LABEL_MAPS:
            return {k: _label(v) for k, v in sorted(value.items())}
        return {k: _canon(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [_canon(item, key) for item in value]
        if key in _UNORDERED and all(isinstance(item, str) for item in items):
            return sorted(set(items))
        return items
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _label(value: Any) -> Any:
    if isinstance(value, list):
        values = sorted(set(map(str, value)))
        return values[0] if len(values) == 1 else values
    return value


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
