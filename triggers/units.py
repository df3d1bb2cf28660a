"""Quantities people write in YAML: durations such as ``10m`` or ``1h30m``,
and metric thresholds such as ``2 GiB``, ``50k`` or ``95%``.

Prefect's own models take seconds or ISO 8601 (``PT10M``); both still work,
so YAML written for ``prefect automation create -f`` loads unchanged.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
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


class Unit(StrEnum):
    """What a metric's value counts; a threshold must be written in the same kind."""

    BYTES = "bytes"
    COUNT = "count"
    SECONDS = "seconds"
    PERCENT = "percent"


_BYTES = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_COUNTS = {"k": 1e3, "m": 1e6, "b": 1e9}  # case-sensitive forms below: 50k, 2M, 1B
_QUANTITY = re.compile(r"^\s*(?P<number>-?\d+(?:\.\d+)?(?:e\d+)?)\s*(?P<suffix>[A-Za-z%]*)\s*$")
_EXAMPLES = {
    Unit.BYTES: "2 GiB, 500 MB, 1073741824",
    Unit.COUNT: "50k, 2M, 100000",
    Unit.SECONDS: "90s, 10m, 2h, 30d",
    Unit.PERCENT: "95%, 99.5",
}


def examples(unit: Unit) -> str:
    return _EXAMPLES[unit]


def parse_quantity(value: Any, unit: Unit) -> float:
    """A threshold in the metric's base unit: ``"2 GiB"`` is 2147483648 bytes.

    A bare number is taken in the base unit. A suffix of another kind (``30d``
    for a byte metric) is an error that says which forms fit, because a
    threshold silently read in the wrong unit would fire at the wrong time.
    """
    if isinstance(value, bool):
        raise ValueError(f"a threshold must be a number, not {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"a threshold must be a number or text such as {examples(unit)}")
    if unit == Unit.SECONDS and not _QUANTITY.match(value):
        seconds = parse_duration(value)  # compound forms such as 1h30m
        if isinstance(seconds, timedelta):
            return seconds.total_seconds()
    match = _QUANTITY.match(value)
    if match is None:
        raise ValueError(f"cannot read {value!r} as a {unit} threshold; write {examples(unit)}")
    number, suffix = float(match["number"]), match["suffix"]
    if not suffix:
        return number
    lower = suffix.lower()
    if unit == Unit.BYTES and lower in _BYTES:
        return number * _BYTES[lower]
    if unit == Unit.COUNT and suffix in ("k", "K", "M", "B"):
        return number * _COUNTS[lower]
    if unit == Unit.PERCENT and suffix == "%":
        return number
    if unit == Unit.SECONDS:
        seconds = parse_duration(value)
        if isinstance(seconds, timedelta):
            return seconds.total_seconds()
    raise ValueError(
        f"{value!r} is not a {unit} quantity ({suffix!r} does not fit this metric); "
        f"write {examples(unit)}"
    )


def human(value: float | None, unit: Unit) -> str:
    """A value as a person reads it: ``1.5 GiB``, ``52,000``, ``2h 5m``, ``97.5%``."""
    if value is None:
        return "no data"
    if unit == Unit.BYTES:
        size = float(value)
        for name in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(size) < 1024 or name == "TiB":
                return f"{size:,.0f} {name}" if name == "B" else f"{size:,.1f} {name}"
            size /= 1024
    if unit == Unit.PERCENT:
        return f"{value:.1f}%"
    if unit == Unit.SECONDS:
        return _human_seconds(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _human_seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    total = round(value)
    parts = []
    for name, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            parts.append(f"{amount}{name}")
    return " ".join(parts[:2])
