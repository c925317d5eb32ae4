"""The reports' figures from the tallies (domain/tallies.py), exact at any `as_of`.

A creation window splits into whole days in the business time zone, which the tallies sum,
and the instants at its ends (`from`/`to` not at midnight, or the company's window ending
now), read from the tables. As of an instant T on day D the tallies give the figures as they
stood when D began (the days before it, or the total less the days from D on, whichever is
fewer rows); the opportunities with an event on D up to T are then read from the tables as of
T, and taken out as of the start of D. The sums equal what the tables alone give.
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
Condition = Callable[[Any, Any], sa.ColumnElement[bool]]  # over (created_at, id) columns


@dataclass(frozen=True)
class Span:
    """A creation window [start, end): its whole days [first_day, end_day) (None: open) and
    the instant ranges outside them."""

    whole: bool  # False: no whole day at all
    first_day: date | None
    end_day: date | None
    partial: tuple[tuple[datetime | None, datetime | None], ...]


def midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def span(start: datetime | None, end: datetime | None, zone: ZoneInfo) -> Span:
    first = end_day = None
    partial: list[tuple[datetime | None, datetime | None]] = []
    if start is not None:
        d0 = start.astimezone(zone).date()
        first = d0 if start == midnight(d0, zone) else d0 + timedelta(days=1)
    if end is not None:
        end_day = end.astimezone(zone).date()
    if first is not None and end_day is not None and first >= end_day:
        return Span(False, None, None, ((start, end),))
    if start is not None and first is not None and start != midnight(first, zone):
        partial.append((start, midnight(first, zone)))
    if end is not None and end_day is not None and end != midnight(end_day, zone):
        partial.append((midnight(end_day, zone), end))
    return Span(True, first, end_day, tuple(partial))


def _in_days(col: Any, s: Span) -> sa.ColumnElement[bool]:
    if not s.whole:
        return sa.false()
    found: list[sa.ColumnElement[bool]] = []
    if s.first_day is not None:
        found.append(col >= s.first_day)
    if s.end_day is not None:
        found.append(col < s.end_day)
    return sa.and_(sa.true(), *found)


def _in_partial(col: Any, s: Span) -> sa.ColumnElement[bool]:
    ranges = []
    for a, b in s.partial:
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
    """The opportunities an exact read covers: `ids` (a SELECT of ids, to find them by key)
    and the condition of each part (the query's cohort, the company's) over (created_at, id)."""

    ids: sa.Select[Any]
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Plan:
    """How one report reads the tallies as of `at`: the boundary day D, the touched ids."""

    as_of: datetime | None
    day: date | None
    touched: sa.Select[Any] | None  # ids with an event on D up to as_of

    def before_day(self, zone: ZoneInfo) -> datetime | None:
        """The last instant before D began."""
        return None if self.day is None else midnight(self.day, zone) - ONE_MICROSECOND


def plan(t: Tables, as_of: datetime | None, zone: ZoneInfo) -> Plan:
    if as_of is None:
        return Plan(None, None, None)
    day = as_of.astimezone(zone).date()
    v = t.version.c
    touched = (
        sa.select(v.opportunity_id)
        .where(v.occurred_at >= midnight(day, zone), v.occurred_at <= as_of)
        .distinct()
    )
    return Plan(as_of, day, touched)


def exact_parts(
    t: Tables, p: Plan, spans: Iterable[Span], zone: ZoneInfo
) -> tuple[Only | None, Only | None]:
    """What to read exactly: as of T (the partial ranges, and the touched opportunities of the
    whole days) and as of the start of D (the touched opportunities of the whole days)."""
    spans = tuple(spans)
    o = t.opportunity.c
    partial_ids = [sa.select(o.id).where(_in_partial(o.created_at, s)) for s in spans if s.partial]
    touched = p.touched

    def now_part(s: Span) -> Condition:
        def condition(created: Any, key: Any) -> sa.ColumnElement[bool]:
            found = [_in_partial(created, s)]
            if touched is not None:
                found.append(sa.and_(_in_whole_instants(created, s, zone), key.in_(touched)))
            return sa.or_(*found)

        return condition

    def then_part(s: Span) -> Condition:
        def condition(created: Any, key: Any) -> sa.ColumnElement[bool]:
            assert touched is not None  # noqa: S101 - only with as_of
            return sa.and_(_in_whole_instants(created, s, zone), key.in_(touched))

        return condition

    selects = [*partial_ids, *([touched] if touched is not None else [])]
    now = None
    if selects:
        ids = selects[0] if len(selects) == 1 else sa.union(*selects)
        now = Only(sa.select(ids.subquery().c[0]), tuple(now_part(s) for s in spans))
    then = None
    if touched is not None and any(s.whole for s in spans):
        then = Only(touched, tuple(then_part(s) for s in spans))
    return now, then


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
    they stood when the plan's day began (now, without one): rows of group values, then the
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

    if p.day is None:
        queries = [select(tally.total, 1)]
    else:
        first, last = conn.execute(
            sa.select(sa.func.min(tally.by_day.c.event_day), sa.func.max(tally.by_day.c.event_day))
        ).one()
        if first is None or p.day <= first:
            return []
        if last is not None and (p.day - first) > (last - p.day):
            # Nearer the end: the total less the days from D on.
            queries = [
                select(tally.total, 1),
                select(tally.by_day, -1, tally.by_day.c.event_day >= p.day),
            ]
        else:
            queries = [select(tally.by_day, 1, tally.by_day.c.event_day < p.day)]
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
