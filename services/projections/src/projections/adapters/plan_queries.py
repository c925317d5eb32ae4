"""The queries of the attainment, standings and deferral reports (SPEC §9, issue 14).

Events are read from `bi_opportunity_version`: each row is an event with the owner and team
after it, which are those credited with it (an event does not change the owner, but an
assignment, which no figure here counts).
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from projections.adapters.schema import Tables
from projections.application.read_model import Events, Query
from projections.domain.attainment import Credit, OpenOwned
from projections.domain.deferrals import Episode
from projections.domain.plans import CompetitionRow, TargetChange
from projections.domain.state import ACTIVE, VOIDED


def credits(t: Tables, conn: sa.Connection, e: Events) -> list[Credit]:
    v, o = t.version, t.opportunity
    voided = sa.and_(o.c.status == VOIDED, o.c.closed_at <= e.as_of)
    conditions = [
        v.c.event_type.in_(e.types),
        v.c.occurred_at >= e.start,
        v.c.occurred_at < e.end,
        v.c.occurred_at <= e.as_of,
        ~voided,
    ]
    if e.opportunity_types:
        conditions.append(o.c.type.in_(e.opportunity_types))
    if e.tiers:
        conditions.append(o.c.tier.in_(e.tiers))
    group = (v.c.event_type, v.c.owner_id, v.c.team_id, v.c.currency)
    rows = conn.execute(
        sa.select(*group, sa.func.count(), sa.func.sum(v.c.won_amount))
        .select_from(v.join(o, o.c.id == v.c.opportunity_id))
        .where(*conditions)
        .group_by(*group)
    )
    return [
        Credit(kind, owner, team, cur, int(n), _decimal(amount))
        for kind, owner, team, cur, n, amount in rows
    ]


def open_owned(
    source: sa.Subquery, conn: sa.Connection, close_from: date, close_to: date
) -> list[OpenOwned]:
    s = source
    group = (s.c.pipeline_id, s.c.stage, s.c.owner_id, s.c.team_id, s.c.currency)
    rows = conn.execute(
        sa.select(*group, sa.func.count(), sa.func.sum(s.c.amount))
        .where(
            s.c.status.in_(ACTIVE),
            s.c.expected_close_on >= close_from,
            s.c.expected_close_on < close_to,
        )
        .group_by(*group)
    )
    return [
        OpenOwned(pipeline, stage, owner, team, cur, int(n), _decimal(amount))
        for pipeline, stage, owner, team, cur, n, amount in rows
    ]


def target_changes(
    t: Tables, conn: sa.Connection, period: str, as_of: datetime
) -> list[TargetChange]:
    c = t.target_change
    rows = conn.execute(
        sa.select(c)
        .where(c.c.period == period, c.c.occurred_at <= as_of)
        .order_by(c.c.occurred_at, c.c.target_id, c.c.version)
    )
    return [TargetChange(**row) for row in rows.mappings()]


def competition(t: Tables, conn: sa.Connection, competition_id: str) -> CompetitionRow | None:
    c = t.competition
    row = conn.execute(sa.select(c).where(c.c.competition_id == competition_id)).mappings().first()
    return None if row is None else CompetitionRow(**row)


def competitions(t: Tables, conn: sa.Connection) -> list[CompetitionRow]:
    """Every competition's latest definition, the newest defined first."""
    c = t.competition
    rows = conn.execute(sa.select(c).order_by(c.c.defined_at.desc(), c.c.competition_id))
    return [CompetitionRow(**row) for row in rows.mappings()]


def deferrals(
    t: Tables,
    conn: sa.Connection,
    source: sa.Subquery,
    q: Query,
    start: datetime | None,
    end: datetime | None,
) -> list[Episode]:
    d = t.deferral
    conditions: list[sa.ColumnElement[bool]] = []
    if q.as_of is not None:
        conditions.append(d.c.deferred_at <= q.as_of)
    if start is not None:
        conditions.append(d.c.deferred_at >= start)
    if end is not None:
        conditions.append(d.c.deferred_at < end)
    rows = conn.execute(
        sa.select(d.c.reason, d.c.deferred_at, d.c.ended_at, d.c.end_kind, source.c.status)
        .select_from(d.join(source, source.c.id == d.c.opportunity_id))
        .where(*conditions)
    )
    return [Episode(*row) for row in rows]


def _decimal(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))
