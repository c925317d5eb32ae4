"""The reports' figures from the tallies (domain/tallies.py), exact at any `as_of`.

A creation window splits into whole days in the business time zone, which the tallies sum,
and the instants at its ends (`from`/`to` not at midnight), read from the tables. A window
that ends at the report's instant (the company's trailing one; a cohort `to` the `as_of`)
takes its last day whole, as of that instant, less those created from that instant on.

As of an instant T in the five-minute slot S of hour H of day D, the tallies give the figures
as they stood when S began: the days before D (or the total less the days from D on, whichever
is fewer rows), the hours of D before H and the slots of H before S. What the events of S up to T changed is worked out as the
store works it out (adapters/replay.py) and added. The sums equal what the tables alone give.
"""

import time as time_
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from projections.adapters.replay import Slot, read_slot
from projections.adapters.schema import Tables
from projections.adapters.tally_tables import SHAPE_COLUMNS
from projections.application.read_model import CompletedVisits, OpenStage, Query
from projections.domain import tallies as t_
from projections.domain.funnel import ReachCount
from projections.domain.state import ACTIVE

# A condition over an opportunity's `created_at` column.
Condition = Callable[[Any], sa.ColumnElement[bool]]
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


def _in_ranges(col: Any, ranges_: Iterable[Range]) -> sa.ColumnElement[bool]:
    ranges = []
    for a, b in ranges_:
        bounds = [col >= a] if a is not None else []
        bounds += [col < b] if b is not None else []
        ranges.append(sa.and_(sa.true(), *bounds))
    return sa.or_(sa.false(), *ranges)


@dataclass(frozen=True)
class Only:
    """The opportunities an exact read covers: `ids` (a subquery of `id`, joined by key) and
    the condition of each part (the query's cohort, the company's) over `created_at`."""

    ids: sa.Subquery
    parts: tuple[Condition, ...]


@dataclass
class Plan:
    """How one report reads the tallies as of `as_of` (None: now): the slot S that holds it,
    the tallies the report reads, and what the events of S up to `as_of` changed in them (the
    rows read once, each tally's changes worked out once)."""

    as_of: datetime | None
    slot: datetime | None
    reads: set[str] = field(default_factory=set)
    _slot: Slot | None = None
    _replayed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def replayed(
        self, conn: sa.Connection, t: Tables, zone: ZoneInfo, name: str
    ) -> list[dict[str, Any]]:
        """Tally `name`'s changes of S up to `as_of`, as rows by column name (none without
        one); worked out with those of the other tallies the report reads not yet worked out."""
        if self.as_of is None or self.slot is None:
            return []
        if name not in self._replayed:
            if self._slot is None:
                self._slot = read_slot(conn, t, self.slot, self.as_of)
            names = (self.reads | {name}) - set(self._replayed)
            totals = self._slot.changes(conn, t, zone, names).totals()
            for n in names:
                self._replayed[n] = [
                    dict(zip(SHAPE_COLUMNS[n], row, strict=True)) for row in totals.get(n, [])
                ]
        return self._replayed[name]


# The plans of each open reading (a report's connection), by `as_of`: the figures a report
# reads through several tallies replay the slot once.
_PLANS: "WeakKeyDictionary[sa.Connection, dict[datetime | None, Plan]]" = WeakKeyDictionary()


def plan(conn: sa.Connection, as_of: datetime | None, zone: ZoneInfo, *reads: str) -> Plan:
    """The plan of a report's reads as of `as_of`, one per reading; `reads`: the tallies the
    caller is about to read (worked out from the slot's rows together). On PostgreSQL the reads
    are small: no parallel workers (whose start costs more than they save here)."""
    plans = _PLANS.get(conn)
    if plans is None:
        plans = _PLANS[conn] = {}
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
    if as_of not in plans:
        plans[as_of] = Plan(as_of, None if as_of is None else t_.slot_of(as_of, zone))
    plans[as_of].reads.update(reads)
    return plans[as_of]


@dataclass(frozen=True)
class Exact:
    """What a report reads from the tables besides the tallies, as of T, each an `Only` or
    None: the partial ranges (added), and those created in a whole day after the window
    (taken out)."""

    now: Only | None
    excess: Only | None


def exact_parts(conn: sa.Connection, t: Tables, spans: Iterable[Span]) -> Exact:
    """The reads the spans need; none where no opportunity was created in their ranges (one
    look at the index of `created_at` spares building and planning a read of nothing)."""
    spans = tuple(spans)
    o = t.opportunity.c

    def only(ranges: Callable[[Span], tuple[Range, ...]]) -> Only | None:
        selects = [
            sa.select(o.id.label("id")).where(_in_ranges(o.created_at, ranges(s)))
            for s in spans
            if ranges(s)
        ]
        if not selects or not any(conn.execute(sa.select(q.exists())).scalar() for q in selects):
            return None
        rows = (selects[0] if len(selects) == 1 else sa.union(*selects)).subquery("only")
        parts = tuple((lambda created, s=s: _in_ranges(created, ranges(s))) for s in spans)
        return Only(rows, parts)

    return Exact(only(lambda s: s.partial), only(lambda s: s.excess))


# -- summing a tally ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cond:
    """A condition on a tally's columns: in SQL, and on a replayed row (by column name)."""

    sql: Callable[[Any], sa.ColumnElement[bool]]
    test: Callable[[Mapping[str, Any]], bool]


def both(*conds: Cond) -> Cond:
    return Cond(
        lambda c: sa.and_(sa.true(), *(x.sql(c) for x in conds)),
        lambda r: all(x.test(r) for x in conds),
    )


def equal(name: str, value: Any) -> Cond:
    return Cond(lambda c: c[name] == value, lambda r: bool(r[name] == value))


def among(name: str, values: Iterable[Any]) -> Cond:
    found = tuple(values)
    return Cond(lambda c: c[name].in_(found), lambda r: r[name] in found)


def between(name: str, first: Any, end: Any) -> Cond:
    """first <= column < end; None: open."""

    def sql(c: Any) -> sa.ColumnElement[bool]:
        bounds = [] if first is None else [c[name] >= first]
        return sa.and_(sa.true(), *bounds, *([] if end is None else [c[name] < end]))

    def test(r: Mapping[str, Any]) -> bool:
        return (first is None or r[name] >= first) and (end is None or r[name] < end)

    return Cond(sql, test)


NOTHING = Cond(lambda _: sa.false(), lambda _: False)
ANY = Cond(lambda _: sa.true(), lambda _: True)


def sums(
    conn: sa.Connection,
    t: Tables,
    name: str,
    group: tuple[str, ...],
    parts: list[Cond],
    where: Cond,
    p: Plan,
    zone: ZoneInfo,
) -> list[tuple[Any, ...]]:
    """Tally `name`'s measures summed by `group`, once per part, as they stood at the plan's
    `as_of` (now without one): rows of group values, then the measures of each part."""
    tally = t.tallies[name]

    def select(table: sa.Table, sign: int, *extra: sa.ColumnElement[bool]) -> sa.Select[Any]:
        """The sign `table`'s sums are added with, then the sums."""
        c = table.c
        conditions = [part.sql(c) for part in parts]
        # One part: the WHERE holds its condition, and a row is summed as it is. Several: each
        # sum FILTERed by its part (NULL where none is: read as 0), cheaper to build and to
        # run than a CASE per measure and row.
        measures = [
            sa.func.sum(c[m]) if len(parts) == 1 else sa.func.sum(c[m]).filter(condition)
            for condition in conditions
            for m in tally.measures
        ]
        return (
            sa.select(sa.literal(sign).label("sign"), *(c[g] for g in group), *measures)
            .where(where.sql(c), sa.or_(*conditions), *extra)
            .group_by(*(c[g] for g in group))
        )

    if p.slot is None:
        selects = [select(tally.total, 1)]
    else:
        day, days = p.slot.date(), tally.by_day.c.event_day
        start, hour = p.slot.replace(hour=0, minute=0), p.slot.replace(minute=0)
        first, last = _bounds(conn, tally.by_day)
        if first is not None and last is not None and (day - first) > (last - day):
            # Nearer the end: the total less the days from D on.
            selects = [select(tally.total, 1), select(tally.by_day, -1, days >= day)]
        else:
            selects = [select(tally.by_day, 1, days < day)]
        hours, slots = tally.by_hour.c.event_hour, tally.by_slot.c.event_slot
        if hour > start:
            selects.append(select(tally.by_hour, 1, hours >= start, hours < hour))
        if p.slot > hour:
            selects.append(select(tally.by_slot, 1, slots >= hour, slots < p.slot))
    rows: dict[tuple[Any, ...], list[int]] = {}
    width = len(parts) * len(tally.measures)
    # One statement for every level summed (each is a round trip and a plan).
    for row in conn.execute(selects[0] if len(selects) == 1 else sa.union_all(*selects)):
        sign, key, values = row[0], tuple(row[1 : len(group) + 1]), row[len(group) + 1 :]
        known = rows.setdefault(key, [0] * width)
        for i, value in enumerate(values):
            known[i] += sign * int(value or 0)
    for r in p.replayed(conn, t, zone, name):
        if not where.test(r):
            continue
        for i, part in enumerate(parts):
            if part.test(r):
                known = rows.setdefault(tuple(r[g] for g in group), [0] * width)
                at = i * len(tally.measures)
                for j, m in enumerate(tally.measures):
                    known[at + j] += r[m]
    return [(*k, *v) for k, v in rows.items()]


# The first and last day each day table holds, by database and table, with when they were read.
_BOUNDS: dict[tuple[str, str], tuple[float, date | None, date | None]] = {}
_BOUNDS_SECONDS = 60.0


def _bounds(conn: sa.Connection, by_day: sa.Table) -> tuple[date | None, date | None]:
    """The first and last day `by_day` holds, read at most once a minute: they only choose
    which of two equal sums is the cheaper to read."""
    key = (conn.engine.url.render_as_string(), by_day.name)
    known = _BOUNDS.get(key)
    if known is None or time_.monotonic() - known[0] > _BOUNDS_SECONDS:
        days = by_day.c.event_day
        first, last = conn.execute(sa.select(sa.func.min(days), sa.func.max(days))).one()
        known = _BOUNDS[key] = (time_.monotonic(), first, last)
    return known[1], known[2]


def segment_filter(q: Query) -> Cond:
    return both(*(equal(n, getattr(q, n)) for n in ("type", "tier", "ownership") if getattr(q, n)))


def day_part(s: Span) -> Cond:
    return between("created_day", s.first_day, s.end_day) if s.whole else NOTHING


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
    names = [f.name for f in fields(cls)]
    for sign, rows in signed:
        for row in rows:
            values = tuple(getattr(row, name) for name in names)
            key, figures = values[:-width], values[-width:]
            known = found.setdefault(key, [0] * width)
            for i, f in enumerate(figures):
                known[i] += sign * f
    return [cls(*key, *figures) for key, figures in found.items() if figures[0]]
