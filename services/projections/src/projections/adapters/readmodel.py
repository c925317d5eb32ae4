"""The queries behind the reports: small GROUP BY answers from the read model.

The pure metric functions finish them. Every query reads the opportunities as they were at
`as_of`.

Without `as_of` the current rows (`bi_opportunity`) are the state; with it, each
opportunity's state is its `bi_opportunity_version` row of the last event that occurred up
to `as_of` — exact, because an opportunity's events occur in version order (the opportunity
service refuses an `occurred_at` before the last event's).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from projections.adapters import plan_queries, tallied_reports
from projections.adapters.columns import epoch
from projections.adapters.filters import FIXED, beyond_segment, filters
from projections.adapters.schema import LIVE, Tables
from projections.adapters.tallied import Only
from projections.adapters.visit_queries import completed_visits
from projections.application.read_model import (
    Cohort,
    Events,
    OpenStage,
    Query,
    Reading,
    Win,
    WonMonth,
)
from projections.domain.attainment import Credit, OpenOwned
from projections.domain.deferrals import Episode
from projections.domain.forecast import OpenAmount, month_of
from projections.domain.funnel import ReachCount
from projections.domain.plans import CompetitionRow, TargetChange
from projections.domain.state import ACTIVE, HISTORY_FIELDS


class SqlReadModel:
    """The read model in the projections database (projections.application.read_model)."""

    def __init__(self, engine: sa.Engine, zone: ZoneInfo, tables: Tables = LIVE) -> None:
        self.engine, self.zone, self.t = engine, zone, tables

    @contextmanager
    def reading(self) -> Iterator[Reading]:
        """One snapshot for all of a report's statements (on PostgreSQL: REPEATABLE READ), so
        the tallies and the rows read beside them are of the same moment."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            yield _Reading(self, conn)

    def tallied(self, conn: sa.Connection, q: Query) -> bool:
        """Whether the tallies answer for the query: they have no owner, team or
        classification, and a migrated database has none until it is rebuilt."""
        if beyond_segment(q):
            return False
        missing = self.t.tallies_missing
        return conn.execute(sa.select(missing.c.reason).limit(1)).first() is None

    def source(self, q: Query, only: sa.Subquery | None = None) -> sa.Subquery:
        """The opportunities of the query, as they were at `q.as_of`; with `only` (a subquery
        of `id`, see tallied.py), those it names."""
        o = self.t.opportunity
        fixed = [o.c[name] for name in FIXED]
        if q.as_of is None:
            select = sa.select(*fixed, *(o.c[name] for name in HISTORY_FIELDS))
        else:
            # The row of the last event up to `as_of`: its version's successor (versions go
            # up by one) did not occur by then.
            h, later = self.t.version, self.t.version.alias("later")
            successor = (
                sa.select(later.c.version)
                .where(
                    later.c.opportunity_id == h.c.opportunity_id,
                    later.c.version == h.c.version + 1,
                    later.c.occurred_at <= q.as_of,
                )
                .exists()
            )
            select = (
                sa.select(*fixed, *(h.c[name] for name in HISTORY_FIELDS))
                .select_from(o.join(h, h.c.opportunity_id == o.c.id))
                .where(h.c.occurred_at <= q.as_of, ~successor)
            )
        if only is not None:
            select = select.join(only, only.c.id == o.c.id)
        inner = select.subquery("state")
        conditions = filters(inner.c, q, segment=True)
        if not q.include_voided:
            conditions.append(inner.c.status != "voided")
        return sa.select(inner).where(*conditions).subquery("cohort")

    # -- the stage figures -----------------------------------------------------------------

    def cohorts(
        self, conn: sa.Connection, q: Query, company: Query, at: datetime, *, visits: bool = True
    ) -> tuple[Cohort, Cohort]:
        """The stage figures of the query's cohort and of the company's trailing cohort (same
        segment and `as_of`, other creation window, everyone's)."""
        if self.tallied(conn, q):
            return tallied_reports.cohorts(self, conn, q, company, at, visits=visits)
        return self.exact_cohorts(conn, q, company, at, visits=visits)

    def exact_cohorts(
        self,
        conn: sa.Connection,
        q: Query,
        company: Query,
        at: datetime,
        *,
        visits: bool = True,
        only: Only | None = None,
    ) -> tuple[Cohort, Cohort]:
        """The stage figures from the tables, each read once (of the opportunities `only`
        names, when given, each part with its own condition)."""
        if conn.dialect.name == "postgresql":
            # The GROUP BYs hash in memory instead of sorting on disk (for the rest of the
            # connection's transaction: the forecast's open amounts too).
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        base = replace(q.segment(), include_voided=True)
        s = self.source(base, None if only is None else only.ids)
        mine = sa.and_(sa.true(), *filters(s.c, q, segment=False))
        theirs = sa.and_(sa.true(), *filters(s.c, company, segment=False))
        if only is not None:
            mine = sa.and_(mine, only.parts[0](s.c.created_at))
            theirs = sa.and_(theirs, only.parts[1](s.c.created_at))
        reach: tuple[list[ReachCount], list[ReachCount]] = ([], [])
        open_: tuple[list[OpenStage], list[OpenStage]] = ([], [])
        now = sa.literal(at.timestamp(), sa.Float)
        active = s.c.status.in_(ACTIVE)
        paused_now = sa.case((s.c.paused_at.is_(None), 0.0), else_=now - epoch(s.c.paused_at))
        age = now - epoch(s.c.stage_entered_at) - s.c.visit_paused_seconds - paused_now

        def sums(part: sa.ColumnElement[bool]) -> list[sa.ColumnElement[Any]]:
            live = sa.and_(part, active)
            return [
                sa.func.sum(sa.case((part, 1), else_=0)),
                sa.func.sum(sa.case((live, age), else_=0.0)),
                sa.func.sum(sa.case((live, s.c.amount), else_=None)),
            ]

        group = (
            s.c.pipeline_id,
            s.c.tier,
            s.c.ownership,
            s.c.furthest_stage_index,
            s.c.status,
            s.c.stage,
            s.c.currency,
        )
        rows = conn.execute(
            sa.select(*group, *sums(mine), *sums(theirs))
            .where(sa.or_(mine, theirs))
            .group_by(*group)
        )
        for pipeline, tier, ownership, furthest, status, stage, currency, *figures in rows:
            for part in (0, 1):
                count, age_sum, amount = figures[3 * part : 3 * part + 3]
                if not count:
                    continue
                reach[part].append(ReachCount(pipeline, tier, ownership, furthest, status, count))
                if status in ACTIVE:
                    open_[part].append(
                        OpenStage(
                            pipeline, stage, currency, count, float(age_sum or 0), _decimal(amount)
                        )
                    )
        completed = (
            completed_visits(self.t, self.source, conn, q, company, base, only)
            if visits
            else ([], [])
        )
        return (
            Cohort(reach[0], completed[0], open_[0], q.include_voided),
            Cohort(reach[1], completed[1], open_[1], q.include_voided),
        )

    def open_amounts(self, conn: sa.Connection, q: Query) -> list[OpenAmount]:
        if self.tallied(conn, q):
            return tallied_reports.open_amounts(self, conn, q)
        return self.exact_open_amounts(conn, q)

    def exact_open_amounts(
        self, conn: sa.Connection, q: Query, only: Only | None = None
    ) -> list[OpenAmount]:
        s = self.source(q, None if only is None else only.ids)
        group = (
            s.c.pipeline_id,
            s.c.stage,
            s.c.expected_close_on,
            s.c.currency,
            s.c.forecast_category_override,
        )
        query = (
            sa.select(
                *group,
                sa.func.count(),
                sa.func.sum(s.c.amount),
                sa.func.sum(sa.case((s.c.amount.is_(None), 1), else_=0)),
            )
            .where(s.c.status.in_(ACTIVE), *_part(s, only))
            .group_by(*group)
        )
        return [
            OpenAmount(p, st, close, cur, n, _decimal(amount), int(missing or 0), override)
            for p, st, close, cur, override, n, amount, missing in conn.execute(query)
        ]

    def stale(
        self, conn: sa.Connection, q: Query, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """Open opportunities, the longest idle first."""
        s = self.source(q)
        where = s.c.status == "open"
        total = conn.execute(sa.select(sa.func.count()).select_from(s).where(where)).scalar_one()
        rows = conn.execute(
            sa.select(s)
            .where(where)
            .order_by(s.c.last_progress_at, s.c.id)
            .limit(limit)
            .offset(offset)
        )
        return int(total), [dict(row) for row in rows.mappings()]

    def wins(self, conn: sa.Connection, q: Query, only: Only | None = None) -> list[Win]:
        s = self.source(q, None if only is None else only.ids)
        rows = conn.execute(
            sa.select(s.c.owner_id, s.c.team_id, s.c.currency, s.c.won_amount, s.c.closed_at).where(
                s.c.status == "won", *_part(s, only)
            )
        )
        return [Win(*row) for row in rows]

    def won_by_month(self, conn: sa.Connection, q: Query) -> list[WonMonth]:
        if self.tallied(conn, q):
            return tallied_reports.won_by_month(self, conn, q)
        return self.exact_won_by_month(conn, q)

    def exact_won_by_month(
        self, conn: sa.Connection, q: Query, only: Only | None = None
    ) -> list[WonMonth]:
        found: dict[tuple[str, str], list[Any]] = {}
        for w in self.wins(conn, q, only):
            key = (month_of(w.won_at.astimezone(self.zone).date()), w.currency)
            sums = found.setdefault(key, [0, Decimal(0)])
            sums[0] += 1
            sums[1] += w.amount or Decimal(0)
        return [WonMonth(month, cur, n, amount) for (month, cur), (n, amount) in found.items()]


@dataclass(frozen=True)
class _Reading:
    """The queries on one connection: one consistent read for a report."""

    model: SqlReadModel
    conn: sa.Connection

    def cohorts(
        self, q: Query, company: Query, at: datetime, *, visits: bool = True
    ) -> tuple[Cohort, Cohort]:
        return self.model.cohorts(self.conn, q, company, at, visits=visits)

    def open_amounts(self, q: Query) -> list[OpenAmount]:
        return self.model.open_amounts(self.conn, q)

    def stale(self, q: Query, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        return self.model.stale(self.conn, q, limit, offset)

    def wins(self, q: Query) -> list[Win]:
        return self.model.wins(self.conn, q)

    def won_by_month(self, q: Query) -> list[WonMonth]:
        return self.model.won_by_month(self.conn, q)

    def credits(self, events: Events) -> list[Credit]:
        if tallied_reports.credits_tallied(self.model, self.conn, events):
            return tallied_reports.credits(self.model, self.conn, events)
        return plan_queries.credits(self.model.t, self.conn, events)

    def open_owned(
        self, as_of: datetime | None, close_from: date, close_to: date
    ) -> list[OpenOwned]:
        if tallied_reports.owned_tallied(self.model, self.conn, close_from, close_to):
            return tallied_reports.open_owned(self.model, self.conn, as_of, close_from, close_to)
        source = self.model.source(Query(as_of=as_of))
        return plan_queries.open_owned(source, self.conn, close_from, close_to)

    def target_changes(self, period: str, as_of: datetime) -> list[TargetChange]:
        return plan_queries.target_changes(self.model.t, self.conn, period, as_of)

    def competition(self, competition_id: str) -> CompetitionRow | None:
        return plan_queries.competition(self.model.t, self.conn, competition_id)

    def competitions(self) -> list[CompetitionRow]:
        return plan_queries.competitions(self.model.t, self.conn)

    def deferrals(self, q: Query, start: datetime | None, end: datetime | None) -> list[Episode]:
        source = self.model.source(q)
        return plan_queries.deferrals(self.model.t, self.conn, source, q, start, end)


def _part(s: sa.Subquery, only: Only | None) -> list[sa.ColumnElement[bool]]:
    """The condition of the one part an exact read of `only` has (open amounts, wins)."""
    return [] if only is None else [only.parts[0](s.c.created_at)]


def _decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))
