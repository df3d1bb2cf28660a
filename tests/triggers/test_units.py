from datetime import timedelta

import pytest

from triggers.units import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h30m", 5400),
        ("2 hours", 7200),
        ("30d", 2592000),
        ("1w", 604800),
        ("45", 45),
    ],
)
def test_unit_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_iso_and_numbers_are_left_to_pydantic() -> None:
    assert parse_duration("PT10M") == "PT10M"
    assert parse_duration(600) == 600


@pytest.mark.parametrize("text", ["10 parsecs", "ten minutes", "10m x"])
def test_bad_durations_say_how_to_write_them(text: str) -> None:
    with pytest.raises(ValueError, match=r"10m|unit"):
        parse_duration(text)
