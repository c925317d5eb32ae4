"""The read model's answers through the tallies (adapters/tallied.py): the cohorts' stage
figures, the forecast's open amounts and wins, the attainment's credits and open amounts.

Each is the tallies' sum plus what the tables give exactly for the rest (the partial days of a
creation window; the opportunities with an event on the `as_of` day, as of then less as of the
day's start); equal to the tables' answer alone (SqlReadModel's `exact_…`).
"""

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from projections.adapters.tallied import (
    ANY,
    COHORT_GROUP,
    VISIT_GROUP,
    among,
    between,
    both,
    cohort_rows,
    combine,
    day_part,
    equal,
    exact_parts,
    midnight,
    plan,
    segment_filter,
    span,
    sums,
    visit_rows,
)
from projections.application.read_model import (
    Cohort,
    CompletedVisits,
    Events,
    OpenStage,
    Query,
    WonMonth,
)
from projections.domain import tallies as t_
from projections.domain.attainment import Credit, OpenOwned
from projections.domain.forecast import OpenAmount
from projections.domain.funnel import ReachCount

if TYPE_CHECKING:
    from projections.adapters.readmodel import SqlReadModel


def _none(text: str) -> str | None:
    return None if text == t_.NONE else text


def _windowless(q: Query) -> Query:
    """The query without its creation window: an excess range lies outside it (the range's
    own condition says which opportunities are read)."""
    return replace(q, created_from=None, created_to=None)


def _amount(cents: int) -> Decimal:
    return Decimal(cents) / 100


def cohorts(
    model: "SqlReadModel",
    conn: sa.Connection,
    q: Query,
    company: Query,
    at: datetime,
    *,
    visits: bool,
) -> tuple[Cohort, Cohort]:
    zone, t = model.zone, model.t
    spans = (
        span(q.created_from, q.created_to, zone, at),
        span(company.created_from, company.created_to, zone, at),
    )
    p = plan(conn, q.as_of, zone, t_.COHORT, *((t_.VISITS,) if visits else ()))
    where = segment_filter(q)
    parts = [day_part(s) for s in spans]
    states = sums(conn, t, t_.COHORT, COHORT_GROUP, parts, where, p, zone)
    completed: list[tuple[Any, ...]] = []
    if visits:
        visit_where = where if q.include_voided else both(where, equal("voided", False))
        completed = sums(conn, t, t_.VISITS, VISIT_GROUP, parts, visit_where, p, zone)
    exact = exact_parts(conn, t, spans)
    signed: list[tuple[int, tuple[Cohort, Cohort]]] = []
    reads = [
        (1, q, company, exact.now),
        (-1, _windowless(q), _windowless(company), exact.excess),
    ]
    for sign, cohort_q, company_q, only in reads:
        if only is not None:
            read = model.exact_cohorts(conn, cohort_q, company_q, at, visits=visits, only=only)
            signed.append((sign, read))
    found: list[Cohort] = []
    for part in (0, 1):
        reach, open_ = cohort_rows(states, part, at)
        terms = [
            (1, Cohort(reach, visit_rows(completed, part), open_)),
            *((sign, read[part]) for sign, read in signed),
        ]
        found.append(
            Cohort(
                combine(ReachCount, 1, [(sign, c.reach) for sign, c in terms]),
                combine(CompletedVisits, 5, [(sign, c.visits) for sign, c in terms]),
                combine(OpenStage, 3, [(sign, c.open) for sign, c in terms]),
                q.include_voided,
            )
        )
    return found[0], found[1]


def open_amounts(model: "SqlReadModel", conn: sa.Connection, q: Query) -> list[OpenAmount]:
    zone, t = model.zone, model.t
    s = span(q.created_from, q.created_to, zone, q.as_of)
    p = plan(conn, q.as_of, zone, t_.FORECAST)
    group = ("pipeline_id", "stage", "close_month", "currency", "category_override")
    found: dict[tuple[Any, ...], list[Any]] = {}

    def add(sign: int, key: tuple[Any, ...], n: int, amount: Decimal, missing: int) -> None:
        known = found.setdefault(key, [0, Decimal(0), 0])
        known[0] += sign * n
        known[1] += sign * amount
        known[2] += sign * missing

    for row in sums(conn, t, t_.FORECAST, group, [day_part(s)], segment_filter(q), p, zone):
        pipeline, stage, month, currency, override, n, cents, missing = row
        add(1, (pipeline, stage, month, currency, _none(override)), n, _amount(cents), missing)
    exact = exact_parts(conn, t, [s])
    for sign, query, only in ((1, q, exact.now), (-1, _windowless(q), exact.excess)):
        if only is not None:
            for a in model.exact_open_amounts(conn, query, only):
                key = (
                    a.pipeline_id,
                    a.stage,
                    t_.month_text(a.expected_close_on),
                    a.currency,
                    a.category_override,
                )
                add(sign, key, a.count, a.amount, a.without_amount)
    return [
        OpenAmount(pipeline, stage, _first_day(month), cur, n, amount, missing, override)
        for (pipeline, stage, month, cur, override), (n, amount, missing) in found.items()
        if n
    ]


def _first_day(month: str) -> date | None:
    """The first day of a 'YYYY-MM' month (the forecast reads only the month), or None."""
    if month == t_.NONE:
        return None
    return date(int(month[:4]), int(month[5:7]), 1)


def won_by_month(model: "SqlReadModel", conn: sa.Connection, q: Query) -> list[WonMonth]:
    zone, t = model.zone, model.t
    s = span(q.created_from, q.created_to, zone, q.as_of)
    p = plan(conn, q.as_of, zone, t_.WINS)
    found: dict[tuple[str, str], list[Any]] = {}

    def add(sign: int, month: str, currency: str, n: int, amount: Decimal) -> None:
        known = found.setdefault((month, currency), [0, Decimal(0)])
        known[0] += sign * n
        known[1] += sign * amount

    group = ("won_month", "currency")
    for month, currency, n, cents in sums(
        conn, t, t_.WINS, group, [day_part(s)], segment_filter(q), p, zone
    ):
        add(1, month, currency, n, _amount(cents))
    exact = exact_parts(conn, t, [s])
    for sign, query, only in ((1, q, exact.now), (-1, _windowless(q), exact.excess)):
        if only is not None:
            for w in model.exact_won_by_month(conn, query, only):
                add(sign, w.month, w.currency, w.wins, w.amount)
    return [WonMonth(m, cur, n, amount) for (m, cur), (n, amount) in found.items() if n]


# -- attainment (SPEC §9.1) --------------------------------------------------------------------


def credits_tallied(model: "SqlReadModel", conn: sa.Connection, e: Events) -> bool:
    """Creations and wins of any opportunity, over whole days: what the credits tally holds."""
    zone = model.zone
    whole_days = all(at == midnight(at.astimezone(zone).date(), zone) for at in (e.start, e.end))
    return (
        set(e.types) <= set(t_.CREDITED)
        and not e.opportunity_types
        and not e.tiers
        and whole_days
        and model.tallied(conn, Query())
    )


def credits(model: "SqlReadModel", conn: sa.Connection, e: Events) -> list[Credit]:
    zone, t = model.zone, model.t
    first, end = e.start.astimezone(zone).date(), e.end.astimezone(zone).date()
    part = both(
        between("credit_day", first, end), equal("voided", False), among("event_type", e.types)
    )
    group = ("event_type", "owner_id", "team_id", "currency")
    rows = sums(
        conn, t, t_.CREDITS, group, [part], ANY, plan(conn, e.as_of, zone, t_.CREDITS), zone
    )
    return [
        Credit(kind, _none(owner), _none(team), currency, n, _amount(cents))
        for kind, owner, team, currency, n, cents in rows
        if n
    ]


def owned_tallied(
    model: "SqlReadModel", conn: sa.Connection, close_from: date, close_to: date
) -> bool:
    """Whole months of expected close dates: what the owned tally holds."""
    return close_from.day == 1 and close_to.day == 1 and model.tallied(conn, Query())


def open_owned(
    model: "SqlReadModel",
    conn: sa.Connection,
    as_of: datetime | None,
    close_from: date,
    close_to: date,
) -> list[OpenOwned]:
    zone, t = model.zone, model.t
    part = between("close_month", t_.month_text(close_from), t_.month_text(close_to))
    group = ("pipeline_id", "stage", "owner_id", "team_id", "currency")
    rows = sums(conn, t, t_.OWNED, group, [part], ANY, plan(conn, as_of, zone, t_.OWNED), zone)
    return [
        OpenOwned(pipeline, stage, _none(owner), _none(team), currency, n, _amount(cents))
        for pipeline, stage, owner, team, currency, n, cents in rows
        if n
    ]
