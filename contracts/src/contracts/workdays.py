"""Working days of mainland China (工作日): weekends and public holidays off, the adjusted
working weekends (调休) on, from the `holidays` library's calendar, never a hand-kept list.

`later(at, span, zone)` is the one clock rules use: a calendar span adds, a working-day span
moves to the same wall-clock time that many working days on. `working_days_between` counts
the working time of an interval in days (a fraction for a part of a day).
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib.metadata import version
from zoneinfo import ZoneInfo

import holidays


@dataclass(frozen=True, order=True)
class WorkingDays:
    """A span counted in working days, written `3wd` in the rules file; ordered among its own
    kind only (a working day is no fixed length of time)."""

    days: int

    def __str__(self) -> str:
        return f"{self.days}wd"


Span = timedelta | WorkingDays

# Which calendar the working days come from: a new release may carry a year's 调休 days.
CALENDAR = f"holidays {version('holidays')} CN"


@lru_cache(maxsize=64)
def _year(year: int) -> tuple[int, ...]:
    """How many working days `year` has before each of its days (and, last, in all of it):
    the projections count the working days of every stage visit, so a count is two look-ups
    per year crossed rather than a walk over the days."""
    calendar = holidays.country_holidays("CN", years=year)
    first = date(year, 1, 1)
    counts = [0]
    for offset in range((date(year + 1, 1, 1) - first).days):
        counts.append(counts[-1] + bool(calendar.is_working_day(first + timedelta(days=offset))))
    return tuple(counts)


def _index(day: date, year: int) -> int:
    return day.toordinal() - date(year, 1, 1).toordinal()


def is_working_day(day: date) -> bool:
    """A weekday that is no public holiday, or a weekend day made a working day (调休)."""
    counts, i = _year(day.year), _index(day, day.year)
    return counts[i + 1] > counts[i]


def _count(start: date, end: date) -> int:
    """The working days from `start` up to, not including, `end`."""
    total = 0
    while start < end:
        stop = min(end, date(start.year + 1, 1, 1))
        counts = _year(start.year)
        total += counts[_index(stop, start.year)] - counts[_index(start, start.year)]
        start = stop
    return total


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
    if first.date() == last.date():
        return _share(last) - _share(first) if is_working_day(first.date()) else 0.0
    head = 1.0 - _share(first) if is_working_day(first.date()) else 0.0
    tail = _share(last) if is_working_day(last.date()) else 0.0
    return head + _count(first.date() + timedelta(days=1), last.date()) + tail


def _share(moment: datetime) -> float:
    """The share of its day gone by at `moment`, by the wall clock."""
    elapsed = moment - datetime.combine(moment.date(), time(0), moment.tzinfo)
    return elapsed / timedelta(days=1)
