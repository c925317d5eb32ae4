"""The queries behind the reports: small GROUP BY answers from the read model, for the pure
metric functions to finish. Every query reads the opportunities as they were at `as_of`.

Without `as_of` the current rows (`bi_opportunity`) are the state; with it, each
opportunity's state is its `bi_opportunity_version` row of the last event that occurred up
to `as_of` — exact, because an opportunity's events occur in version order (the opportunity
service refuses an `occurred_at` before the last event's).
"""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from projections.forecast import OpenAmount
from projections.funnel import ReachCount
from projections.projection import ACTIVE
from projections.schema import LIVE, Tables, epoch


@dataclass(frozen=True)
class Query:
    """Which opportunities a report covers (SPEC §4.2 filters) and whose they may be."""

    type: str | None = None
    tier: str | None = None
    ownership: str | None = None
    owner_id: str | None = None
    team_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    as_of: datetime | None = None
    include_voided: bool = False
    # The principal's reach (SPEC §4.4): a rep's own, a manager's team.
    scope_owner_id: str | None = None
    scope_team_id: str | None = None

    def company(self, created_from: datetime, created_to: datetime) -> "Query":
        """The same customer segment, company-wide, created in [created_from, created_to)."""
        return replace(
            self,
            owner_id=None,
            team_id=None,
            scope_owner_id=None,
            scope_team_id=None,
            created_from=created_from,
            created_to=created_to,
        )


@dataclass(frozen=True)
class CompletedVisits:
    pipeline_id: str
    stage: str
    tier: str
    ownership: str
    exit_kind: str
    count: int
    dwell_seconds: float
    paused_seconds: float


@dataclass(frozen=True)
class OpenStage:
    pipeline_id: str
    stage: str
    currency: str
    count: int
    age_seconds: float
    amount: Decimal


class ReadModel:
    def __init__(self, engine: sa.Engine, tables: Tables = LIVE) -> None:
        self.engine, self.t = engine, tables

    def source(self, q: Query) -> sa.Subquery:
        """The opportunities of the query, as they were at `q.as_of`."""
        o = self.t.opportunity
        fixed = [o.c[name] for name in _FIXED]
        if q.as_of is None:
            select = sa.select(*fixed, *(o.c[name] for name in _CHANGING))
        else:
            h = self.t.version
            latest = (
                sa.select(h.c.opportunity_id, sa.func.max(h.c.version).label("version"))
                .where(h.c.occurred_at <= q.as_of)
                .group_by(h.c.opportunity_id)
                .subquery("latest")
            )
            select = sa.select(*fixed, *(h.c[name] for name in _CHANGING)).select_from(
                o.join(latest, latest.c.opportunity_id == o.c.id).join(
                    h,
                    sa.and_(
                        h.c.opportunity_id == latest.c.opportunity_id,
                        h.c.version == latest.c.version,
                    ),
                )
            )
        inner = select.subquery("state")
        c = inner.c
        conditions: list[sa.ColumnElement[bool]] = []
        for name in ("type", "tier", "ownership", "owner_id", "team_id"):
            value = getattr(q, name)
            if value is not None:
                conditions.append(c[name] == value)
        if q.scope_owner_id is not None:
            conditions.append(c.owner_id == q.scope_owner_id)
        if q.scope_team_id is not None:
            conditions.append(c.team_id == q.scope_team_id)
        if q.created_from is not None:
            conditions.append(c.created_at >= q.created_from)
        if q.created_to is not None:
            conditions.append(c.created_at < q.created_to)
        if not q.include_voided:
            conditions.append(c.status != "voided")
        return sa.select(inner).where(*conditions).subquery("cohort")

    # -- the queries -----------------------------------------------------------------------

    def reach_counts(self, conn: sa.Connection, q: Query) -> list[ReachCount]:
        """Counts by furthest stage and status; voided ones always (to report how many)."""
        s = self.source(replace(q, include_voided=True))
        group = (s.c.pipeline_id, s.c.tier, s.c.ownership, s.c.furthest_stage_index, s.c.status)
        rows = conn.execute(sa.select(*group, sa.func.count()).group_by(*group))
        return [ReachCount(*row) for row in rows]

    def completed_visits(self, conn: sa.Connection, q: Query) -> list[CompletedVisits]:
        s, v = self.source(q), self.t.visit
        group = (v.c.pipeline_id, v.c.stage, s.c.tier, s.c.ownership, v.c.exit_kind)
        query = (
            sa.select(
                *group,
                sa.func.count(),
                sa.func.sum(v.c.dwell_seconds),
                sa.func.sum(v.c.paused_seconds),
            )
            .select_from(v.join(s, s.c.id == v.c.opportunity_id))
            .where(v.c.exited_at.is_not(None))
            .group_by(*group)
        )
        if q.as_of is not None:
            query = query.where(v.c.exited_at <= q.as_of)
        return [
            CompletedVisits(p, st, tier, own, kind, n, float(dwell or 0), float(paused or 0))
            for p, st, tier, own, kind, n, dwell, paused in conn.execute(query)
        ]

    def open_stages(self, conn: sa.Connection, q: Query, at: datetime) -> list[OpenStage]:
        """Active opportunities per current stage: count, summed age of the open visit at
        `at` (paused time left out), summed amount."""
        s = self.source(q)
        now = sa.literal(at.timestamp(), sa.Float)
        paused_now = sa.case((s.c.paused_at.is_(None), 0.0), else_=now - epoch(s.c.paused_at))
        age = now - epoch(s.c.stage_entered_at) - s.c.visit_paused_seconds - paused_now
        group = (s.c.pipeline_id, s.c.stage, s.c.currency)
        query = (
            sa.select(*group, sa.func.count(), sa.func.sum(age), sa.func.sum(s.c.amount))
            .where(s.c.status.in_(ACTIVE))
            .group_by(*group)
        )
        return [
            OpenStage(p, st, cur, n, float(age_sum or 0), _decimal(amount))
            for p, st, cur, n, age_sum, amount in conn.execute(query)
        ]

    def open_amounts(self, conn: sa.Connection, q: Query) -> list[OpenAmount]:
        s = self.source(q)
        group = (s.c.pipeline_id, s.c.stage, s.c.expected_close_on, s.c.currency)
        query = (
            sa.select(
                *group,
                sa.func.count(),
                sa.func.sum(s.c.amount),
                sa.func.sum(sa.case((s.c.amount.is_(None), 1), else_=0)),
            )
            .where(s.c.status.in_(ACTIVE))
            .group_by(*group)
        )
        return [
            OpenAmount(p, st, close, cur, n, _decimal(amount), int(missing or 0))
            for p, st, close, cur, n, amount, missing in conn.execute(query)
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

    def wins(self, conn: sa.Connection, q: Query) -> Iterator[Any]:
        s = self.source(q)
        yield from conn.execute(
            sa.select(s.c.owner_id, s.c.team_id, s.c.currency, s.c.won_amount, s.c.closed_at).where(
                s.c.status == "won"
            )
        )


# Columns no event changes after the creation, and columns the `as_of` state gives.
_FIXED = (
    "id",
    "pipeline_id",
    "type",
    "tier",
    "ownership",
    "uscc",
    "customer_name",
    "created_at",
)
_CHANGING = (
    "status",
    "stage",
    "stage_index",
    "furthest_stage_index",
    "stage_entered_at",
    "visit_paused_seconds",
    "paused_at",
    "owner_id",
    "team_id",
    "amount",
    "currency",
    "expected_close_on",
    "last_progress_at",
    "closed_at",
    "won_amount",
)


def _decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))
