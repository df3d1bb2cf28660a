"""Quantities people write in YAML: durations such as ``10m`` or ``1h30m``.

Prefect's own models take seconds or ISO 8601 (``PT10M``); both still work,
so YAML written for ``prefect automation create -f`` loads unchanged.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*")


def _non_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("a duration cannot be negative")
    return value


def parse_duration(value: Any) -> Any:
    """Turn ``"1h30m"`` or ``"90 minutes"`` into a timedelta; leave other input to pydantic."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text.upper().startswith("P") or ":" in text:
        return value
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        text += "s"
    seconds = 0.0
    position = 0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        unit = match.group(2).lower()
        if unit not in _UNITS:
            raise ValueError(
                f"unknown duration unit {match.group(2)!r} in {value!r}; "
                "use s, m, h, d or w (for example 90s, 10m, 1h30m, 30d)"
            )
        seconds += float(match.group(1)) * _UNITS[unit]
        position = match.end()
    if position != len(text):
        raise ValueError(
            f"cannot read {value!r} as a duration; write seconds (600), "
            "a unit form (10m, 1h30m, 30d) or ISO 8601 (PT10M)"
        )
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{value!r} is too long a duration") from None


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_non_negative),
    PlainSerializer(lambda value: value.total_seconds(), return_type=float, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(\d|P|\d+:)"},
            ],
            "description": "Seconds, a unit form such as 10m, 1h30m or 30d, or ISO 8601 (PT10M)",
        }
    ),
]
