"""Working days of mainland China (工作日): weekends and public holidays off, the adjusted
working weekends (调休) on, from the `holidays` library's calendar, never a hand-kept list.

`later(at, span, zone)` is the one clock rules use: a calendar span adds, a working-day span
moves to the same wall-clock time that many working days on. `working_days_between` counts
the working time of an interval in days (a fraction for a part of a day).
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True)
class WorkingDays:
    """A span counted in working days, written `3wd` in the rules file."""

    days: int

    def __str__(self) -> str:
        return f"{self.days}wd"


Span = timedelta | WorkingDays


@lru_cache(maxsize=64)
def _calendar(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("CN", years=year)


def is_working_day(day: date) -> bool:
    """A weekday that is no public holiday, or a weekend day made a working day (调休)."""
    return bool(_calendar(day.year).is_working_day(day))


def add_working_days(day: date, count: int) -> date:
    """The `count`-th working day after `day` (`day` itself when `count` is 0)."""
    found = day
    for _ in range(count):
        found += timedelta(days=1)
        while not is_working_day(found):
            found += timedelta(days=1)
    return found


def later(at: datetime, span: Span, zone: ZoneInfo) -> datetime:
    """`at` plus `span`: a working-day span keeps the wall-clock time of `at` in `zone`."""
    if isinstance(span, timedelta):
        return at + span
    local = at.astimezone(zone)
    day = add_working_days(local.date(), span.days)
    return datetime.combine(day, local.timetz().replace(tzinfo=None), zone)


def working_days_between(start: datetime, end: datetime, zone: ZoneInfo) -> float:
    """The working time from `start` to `end`, in days: each working day of `zone` the
    interval covers counts by the share of its 24 hours covered."""
    if end <= start:
        return 0.0
    first, last = start.astimezone(zone), end.astimezone(zone)
    total = 0.0
    day = first.date()
    while day <= last.date():
        if is_working_day(day):
            opens = datetime.combine(day, time(0), zone)
            closes = datetime.combine(day + timedelta(days=1), time(0), zone)
            covered = min(closes, last) - max(opens, first)
            total += max(covered, timedelta(0)) / (closes - opens)
        day += timedelta(days=1)
    return total
