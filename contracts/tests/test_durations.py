"""Rules-file durations: ISO 8601 days to seconds or compact units; months and years refused."""

from datetime import timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P7D", timedelta(days=7)),
        ("PT36H", timedelta(hours=36)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("PT30M", timedelta(minutes=30)),
        ("P2W", timedelta(days=14)),
        ("7d", timedelta(days=7)),
        ("36h", timedelta(hours=36)),
        ("30m", timedelta(minutes=30)),
        ("10s", timedelta(seconds=10)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("PT0.5S", timedelta(milliseconds=500)),
    ],
)
def test_iso_and_compact_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["P1M", "P1Y", "P1Y2M", "7x", "", "P", "PT", "d", "7", "-7d"])
def test_months_years_and_garbage_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_refusal_says_why_months_are_not_taken() -> None:
    with pytest.raises(ValueError, match="months and years are refused"):
        parse_duration("P1M")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=7), "P7D"),
        (timedelta(hours=36), "P1DT12H"),
        (timedelta(minutes=30), "PT30M"),
        (timedelta(seconds=10), "PT10S"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4), "P1DT2H3M4S"),
        (timedelta(0), "PT0S"),
        (timedelta(seconds=10, milliseconds=250), "PT10.25S"),
    ],
)
def test_format_duration_writes_iso_that_parses_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(format_duration(value)) == value


def test_duration_field_takes_text_and_dumps_iso() -> None:
    adapter: TypeAdapter[timedelta] = TypeAdapter(Duration)
    assert adapter.validate_python("36h") == timedelta(hours=36)
    assert adapter.dump_python(timedelta(hours=36), mode="json") == "P1DT12H"
    with pytest.raises(ValidationError, match="a duration is text"):
        adapter.validate_python(7)
