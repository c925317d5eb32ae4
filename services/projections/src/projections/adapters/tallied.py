"""The reports' figures from the tallies (domain/tallies.py), exact at any `as_of`.

A creation window splits into whole days in the business time zone, which the tallies sum,
and the instants at its ends (`from`/`to` not at midnight), read from the tables. A window
that ends at the report's instant (the company's trailing one; a cohort `to` the `as_of`)
takes its last day whole, as of that instant, less those created from that instant on.

As of an instant T in hour H of day D, the tallies give the figures as they stood when H
began: the days before D (or the total less the days from D on, whichever is fewer rows) and
the hours of D before H. The opportunities with an event in H up to T are then read from the
tables as of T, and taken out as of the start of H. The sums equal what the tables alone give.
"""

from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from projections.adapters.schema import Tables
from projections.adapters.tally_tables import Tally
from projections.application.read_model import CompletedVisits, OpenStage, Query
from projections.domain import tallies as t_
from projections.domain.funnel import ReachCount
from projections.domain.state import ACTIVE

ONE_MICROSECOND = timedelta(microseconds=1)
# A condition over (created_at, touched) columns: touched is 1 for an opportunity with an event
# in the as_of hour, 0 for one read for its creation outside the whole days.
Condition = Callable[[Any, Any], sa.ColumnElement[bool]]
Range = tuple[datetime | None, datetime | None]


@dataclass(frozen=True)
class Span:
    """A creation window [start, end): its whole days [first_day, end_day) (None: open), the
    instant ranges outside them (read and added) and those inside them but not in the window
    (read and taken out)."""

    whole: bool  # False: no whole day at all
    first_day: date | None
    end_day: date | None
    partial: tuple[Range, ...]
    excess: tuple[Range, ...] = ()


def midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def span(
    start: datetime | None, end: datetime | None, zone: ZoneInfo, at: datetime | None = None
) -> Span:
    """The window's days; `at`: the instant the report is as of (nothing is created after it
    as of then, so a window ending there may take its last day whole)."""
    first = end_day = None
    partial: list[Range] = []
    excess: list[Range] = []
    if start is not None:
        d0 = start.astimezone(zone).date()
        first = d0 if start == midnight(d0, zone) else d0 + timedelta(days=1)
    if end is not None:
        end_day = end.astimezone(zone).date()
        if end != midnight(end_day, zone) and end == at:
            end_day += timedelta(days=1)
            excess.append((end, midnight(end_day, zone)))
    if first is not None and end_day is not None and first >= end_day:
        return Span(False, None, None, ((start, end),))
    if start is not None and first is not None and start != midnight(first, zone):
        partial.append((start, midnight(first, zone)))
    if end is not None and end_day is not None and not excess and end != midnight(end_day, zone):
        partial.append((midnight(end_day, zone), end))
    return Span(True, first, end_day, tuple(partial), tuple(excess))


def _in_days(col: Any, s: Span) -> sa.ColumnElement[bool]:
    if not s.whole:
        return sa.false()
    found: list[sa.ColumnElement[bool]] = []
    if s.first_day is not None:
        found.append(col >= s.first_day)
    if s.end_day is not None:
        found.append(col < s.end_day)
    return sa.and_(sa.true(), *found)


def _in_ranges(col: Any, ranges_: Iterable[Range]) -> sa.ColumnElement[bool]:
    ranges = []
    for a, b in ranges_:
        bounds = [col >= a] if a is not None else []
        bounds += [col < b] if b is not None else []
        ranges.append(sa.and_(sa.true(), *bounds))
    return sa.or_(sa.false(), *ranges)


def _in_whole_instants(col: Any, s: Span, zone: ZoneInfo) -> sa.ColumnElement[bool]:
    """Created on one of the span's whole days (on an instant column)."""
    if not s.whole:
        return sa.false()
    found = []
    if s.first_day is not None:
        found.append(col >= midnight(s.first_day, zone))
    if s.end_day is not None:
        found.append(col < midnight(s.end_day, zone))
    return sa.and_(sa.true(), *found)


@dataclass(frozen=True)
class Only:
    """The opportunities an exact read covers: `ids` (a subquery of `id, touched`, one row per
    opportunity, joined by key) and the condition of each part (the query's cohort, the
    company's) over (created_at, touched)."""

    ids: sa.Subquery
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Plan:
    """How one report reads the tallies as of `as_of` (None: now): the hour H that holds it,
    and the opportunities with an event in H up to `as_of` (`id, touched`)."""

    as_of: datetime | None
    hour: datetime | None
    touched: sa.Subquery | None

    @property
    def before(self) -> datetime | None:
        """The last instant before H began."""
        return None if self.hour is None else self.hour - ONE_MICROSECOND


def plan(t: Tables, as_of: datetime | None, zone: ZoneInfo) -> Plan:
    if as_of is None:
        return Plan(None, None, None)
    hour = t_.hour_of(as_of, zone)
    v = t.version.c
    touched = (
        sa.select(v.opportunity_id.label("id"), sa.literal(1).label("touched"))
        .where(v.occurred_at >= hour, v.occurred_at <= as_of)
        .distinct()
        .subquery("touched")
    )
    return Plan(as_of, hour, touched)


@dataclass(frozen=True)
class Exact:
    """What a report reads from the tables besides the tallies, each an `Only` or None: as of
    T, added (`now`: the partial ranges, the touched opportunities of the whole days) and taken
    out (`excess`: created in a whole day but after the window); as of the start of H, taken
    out (`then`: the touched opportunities of the whole days)."""

    now: Only | None
    then: Only | None
    excess: Only | None


def exact_parts(t: Tables, p: Plan, spans: Iterable[Span], zone: ZoneInfo) -> Exact:
    spans = tuple(spans)
    o = t.opportunity.c

    def created_in(ranges: Callable[[Span], tuple[Range, ...]]) -> list[sa.Select[Any]]:
        return [
            sa.select(o.id.label("id"), sa.literal(0).label("touched")).where(
                _in_ranges(o.created_at, ranges(s))
            )
            for s in spans
            if ranges(s)
        ]

    def only(selects: list[sa.Select[Any]], parts: Iterable[Condition]) -> Only | None:
        if not selects:
            return None
        rows = (selects[0] if len(selects) == 1 else sa.union_all(*selects)).subquery("read")
        ids = (
            sa.select(rows.c.id, sa.func.max(rows.c.touched).label("touched"))
            .group_by(rows.c.id)
            .subquery("only")
        )
        return Only(ids, tuple(parts))

    def now_part(s: Span) -> Condition:
        def condition(created: Any, hit: Any) -> sa.ColumnElement[bool]:
            whole = sa.and_(hit == 1, _in_whole_instants(created, s, zone))
            return sa.or_(_in_ranges(created, s.partial), whole)

        return condition

    def then_part(s: Span) -> Condition:
        def condition(created: Any, hit: Any) -> sa.ColumnElement[bool]:
            return sa.and_(hit == 1, _in_whole_instants(created, s, zone))

        return condition

    def excess_part(s: Span) -> Condition:
        return lambda created, _: _in_ranges(created, s.excess)

    touched = p.touched
    hits = [] if touched is None else [sa.select(touched.c.id, touched.c.touched)]
    now = only(created_in(lambda s: s.partial) + hits, (now_part(s) for s in spans))
    then = None
    if touched is not None and any(s.whole for s in spans):
        then = Only(touched, tuple(then_part(s) for s in spans))
    excess = only(created_in(lambda s: s.excess), (excess_part(s) for s in spans))
    return Exact(now, then, excess)


# -- summing a tally ---------------------------------------------------------------------------


def sums(
    conn: sa.Connection,
    tally: Tally,
    group: tuple[str, ...],
    parts: list[Callable[[Any], sa.ColumnElement[bool]]],
    where: Callable[[Any], list[sa.ColumnElement[bool]]],
    p: Plan,
) -> list[tuple[Any, ...]]:
    """The tally's measures summed by `group`, once per part (a condition on the columns), as
    they stood when the plan's hour began (now, without one): rows of group values, then the
    measures of each part."""

    def select(table: sa.Table, sign: int, *extra: sa.ColumnElement[bool]) -> sa.Select[Any]:
        c = table.c
        measures = [
            sign * sa.func.sum(sa.case((part(c), c[m]), else_=0))
            for part in parts
            for m in tally.measures
        ]
        return (
            sa.select(*(c[g] for g in group), *measures)
            .where(*where(c), sa.or_(*(part(c) for part in parts)), *extra)
            .group_by(*(c[g] for g in group))
        )

    if p.hour is None:
        queries = [select(tally.total, 1)]
    else:
        day, days = p.hour.date(), tally.by_day.c.event_day
        start = p.hour.replace(hour=0)
        first, last = conn.execute(sa.select(sa.func.min(days), sa.func.max(days))).one()
        if first is None or day < first or (day == first and p.hour == start):
            return []  # nothing occurred before H
        if last is not None and (day - first) > (last - day):
            # Nearer the end: the total less the days from D on.
            queries = [select(tally.total, 1), select(tally.by_day, -1, days >= day)]
        else:
            queries = [select(tally.by_day, 1, days < day)]
        hours = tally.by_hour.c.event_hour
        if p.hour > start:
            queries.append(select(tally.by_hour, 1, hours >= start, hours < p.hour))
    rows: dict[tuple[Any, ...], list[int]] = {}
    width = len(parts) * len(tally.measures)
    for query in queries:
        for row in conn.execute(query):
            key, values = tuple(row[: len(group)]), row[len(group) :]
            known = rows.setdefault(key, [0] * width)
            for i, value in enumerate(values):
                known[i] += int(value or 0)
    return [(*k, *v) for k, v in rows.items()]


def segment_filter(q: Query) -> Callable[[Any], list[sa.ColumnElement[bool]]]:
    def where(c: Any) -> list[sa.ColumnElement[bool]]:
        return [c[n] == getattr(q, n) for n in ("type", "tier", "ownership") if getattr(q, n)]

    return where


def day_part(s: Span) -> Callable[[Any], sa.ColumnElement[bool]]:
    return lambda c: _in_days(c.created_day, s)


# -- the cohort figures ------------------------------------------------------------------------

COHORT_GROUP = (
    "pipeline_id",
    "tier",
    "ownership",
    "furthest_stage_index",
    "status",
    "stage",
    "currency",
)
VISIT_GROUP = ("pipeline_id", "stage", "tier", "ownership", "exit_kind")


def cohort_rows(
    rows: list[tuple[Any, ...]], part: int, at: datetime
) -> tuple[list[ReachCount], list[OpenStage]]:
    """A cohort tally's sums (COHORT_GROUP, then 6 measures per part) as reach and open rows."""
    at_us = t_.epoch_micros(at)
    reach, open_ = [], []
    for row in rows:
        pipeline, tier, ownership, furthest, status, stage, currency = row[:7]
        n, cents, entered, paused, paused_n, paused_at = row[7 + 6 * part : 13 + 6 * part]
        if not n:
            continue
        reach.append(ReachCount(pipeline, tier, ownership, furthest, status, n))
        if status in ACTIVE:
            age_us = n * at_us - entered - paused - (paused_n * at_us - paused_at)
            amount = Decimal(cents) / 100
            open_.append(OpenStage(pipeline, stage, currency, n, age_us / t_.MICROS, amount))
    return reach, open_


def visit_rows(rows: list[tuple[Any, ...]], part: int) -> list[CompletedVisits]:
    found = []
    for row in rows:
        pipeline, stage, tier, ownership, kind = row[:5]
        n, dwell, paused, counted, working = row[5 + 5 * part : 10 + 5 * part]
        if n:
            found.append(
                CompletedVisits(
                    pipeline,
                    stage,
                    tier,
                    ownership,
                    kind,
                    n,
                    dwell / t_.MICROS,
                    paused / t_.MICROS,
                    counted,
                    working / t_.MICROS / 86_400,
                )
            )
    return found


def combine(cls: Any, width: int, signed: Iterable[tuple[int, Iterable[Any]]]) -> list[Any]:
    """Rows of dataclass `cls` (key fields first, `width` figures last, the first a count) added
    up with signs by key; keys that come to no count are left out."""
    found: dict[tuple[Any, ...], list[Any]] = {}
    for sign, rows in signed:
        for row in rows:
            values = astuple(row)
            key, figures = values[:-width], values[-width:]
            known = found.setdefault(key, [0] * width)
            for i, f in enumerate(figures):
                known[i] += sign * f
    return [cls(*key, *figures) for key, figures in found.items() if figures[0]]
