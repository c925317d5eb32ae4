"""Working days of mainland China (SPEC §8.4), over the two long holidays a sales team feels
most: 国庆 2026 (with its 调休 Sunday 9/20 and Saturday 10/10) and 春节 2027."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts.durations import format_span, parse_span
from contracts.workdays import (
    WorkingDays,
    add_working_days,
    is_working_day,
    later,
    working_days_between,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 9, 18), True),  # Friday
        (date(2026, 9, 19), False),  # Saturday
        (date(2026, 9, 20), True),  # Sunday made a working day (调休) for National Day
        (date(2026, 9, 25), False),  # 中秋节
        (date(2026, 10, 1), False),  # 国庆节
        (date(2026, 10, 7), False),  # the last day off
        (date(2026, 10, 8), True),  # Thursday, back at work
        (date(2026, 10, 10), True),  # Saturday made a working day (调休)
        (date(2026, 10, 11), False),  # Sunday
        (date(2026, 2, 14), True),  # Saturday made a working day for 春节 2026
        (date(2026, 2, 28), True),  # likewise
        (date(2027, 2, 5), False),  # 除夕 2027
        (date(2027, 2, 8), False),  # 春节 2027, a Monday
        (date(2027, 2, 10), False),  # the last day off of 春节 2027
        (date(2027, 2, 11), True),  # Thursday, back at work
    ],
)
def test_a_day_is_working_as_the_official_calendar_says(day: date, working: bool) -> None:
    assert is_working_day(day) is working


def test_three_working_days_from_the_eve_of_national_day_end_on_the_working_saturday() -> None:
    assert add_working_days(date(2026, 9, 30), 3) == date(2026, 10, 10)


def test_working_days_skip_the_whole_spring_festival_2027() -> None:
    # Thursday 4 Feb 2027, the last working day before 除夕: one working day on is the 11th.
    assert add_working_days(date(2027, 2, 4), 1) == date(2027, 2, 11)


def test_a_working_day_span_keeps_the_wall_clock_time() -> None:
    assert later(at(2026, 9, 30, 10, 0), WorkingDays(1), SHANGHAI) == at(2026, 10, 8, 10, 0)


def test_a_working_day_span_from_a_day_off_counts_from_the_next_working_day() -> None:
    assert later(at(2026, 10, 3, 9, 30), WorkingDays(1), SHANGHAI) == at(2026, 10, 8, 9, 30)


def test_a_calendar_span_adds_plainly() -> None:
    assert later(at(2026, 9, 30, 10, 0), timedelta(days=3), SHANGHAI) == at(2026, 10, 3, 10, 0)


def test_working_time_counts_the_share_of_each_working_day() -> None:
    # Noon on 30 Sep (half a day), then 8, 9 and the working Saturday 10 Oct.
    assert working_days_between(at(2026, 9, 30, 12), at(2026, 10, 12), SHANGHAI) == 3.5


def test_no_working_time_over_the_days_off() -> None:
    assert working_days_between(at(2026, 10, 1), at(2026, 10, 8), SHANGHAI) == 0.0
    assert working_days_between(at(2027, 2, 5), at(2027, 2, 11), SHANGHAI) == 0.0


def test_an_interval_backwards_has_no_working_time() -> None:
    assert working_days_between(at(2026, 10, 9), at(2026, 10, 8), SHANGHAI) == 0.0


@pytest.mark.parametrize(("text", "span"), [("3wd", WorkingDays(3)), (" 10WD ", WorkingDays(10))])
def test_working_days_are_written_wd(text: str, span: WorkingDays) -> None:
    assert parse_span(text) == span
    assert format_span(span) == f"{span.days}wd"


def test_a_span_is_a_duration_too() -> None:
    assert parse_span("P7D") == timedelta(days=7)
    assert format_span(timedelta(hours=36)) == "P1DT12H"


@pytest.mark.parametrize("text", ["3w d", "wd", "-1wd", "1.5wd", "3x"])
def test_a_bad_span_is_refused_naming_both_forms(text: str) -> None:
    with pytest.raises(ValueError, match="3wd"):
        parse_span(text)


def test_working_time_across_a_new_year_and_the_spring_festival() -> None:
    # 30 Dec 2026 from noon (half), 31 Dec; 1 Jan off; January 2027 has 20 working days
    # left (4–29 Jan); 1–4 Feb; then 11 and 12 Feb, and 15 Feb to noon (half).
    start, end = at(2026, 12, 30, 12), at(2027, 2, 15, 12)
    assert working_days_between(start, end, SHANGHAI) == pytest.approx(0.5 + 1 + 20 + 4 + 2 + 0.5)


def test_working_time_within_one_day_is_its_share_of_the_day() -> None:
    assert working_days_between(at(2026, 10, 9, 6), at(2026, 10, 9, 18), SHANGHAI) == 0.5
    assert working_days_between(at(2026, 10, 2, 6), at(2026, 10, 2, 18), SHANGHAI) == 0.0
