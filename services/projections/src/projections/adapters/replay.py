"""What the events of one slot up to an instant changed in the tallies, worked out from the
tables as the store works it out when it applies them (adapters/tally_tables.record): the
opportunities with an event in [slot, as_of] leave with their facts as of the slot's start and
join with those as of `as_of`; their creations and wins in it are credited; their visits
completed in it count; a void in it moves their visits and creation credit to `voided`."""

from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from projections.adapters.schema import Tables
from projections.adapters.tally_tables import void_changes
from projections.domain import tallies as t_
from projections.domain.state import HISTORY_FIELDS, VOIDED

VOID = "OpportunityVoided"  # the event ordering.in_order names a void by


def replay(
    conn: sa.Connection, t: Tables, slot: datetime, as_of: datetime, zone: ZoneInfo
) -> t_.Changes:
    v, o, visit = t.version.c, t.opportunity.c, t.visit
    touched = (
        sa.select(v.opportunity_id)
        .where(v.occurred_at >= slot, v.occurred_at <= as_of)
        .distinct()
        .subquery("touched")
    )
    # Each touched opportunity's last row before the slot and its rows of the slot.
    prior = t.version.alias("prior")
    last_before = (
        sa.select(sa.func.max(prior.c.version))
        .where(prior.c.opportunity_id == v.opportunity_id, prior.c.occurred_at < slot)
        .scalar_subquery()
    )
    rows = _fetch(
        conn,
        sa.select(
            o.id,
            o.created_at,
            o.pipeline_id,
            o.type,
            o.tier,
            o.ownership,
            v.occurred_at,
            v.event_type,
            *(v[f] for f in HISTORY_FIELDS),
        )
        .select_from(
            touched.join(t.opportunity, o.id == touched.c.opportunity_id).join(
                t.version, v.opportunity_id == o.id
            )
        )
        .where(v.occurred_at <= as_of, sa.or_(v.occurred_at >= slot, v.version == last_before))
        .order_by(o.id, v.version),
    )
    histories: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        histories[row[0]].append(row)
    changes = t_.Changes()
    voided: list[tuple[str, datetime]] = []
    for opportunity_id, history in histories.items():
        first = history[0]
        fixed = t_.Fixed(first[1].astimezone(zone).date(), *first[2:6])
        before = [] if first[6] >= slot else t_.state_facts(fixed, first[8:], zone)
        changes.move(slot, before, t_.state_facts(fixed, history[-1][8:], zone))
        for r in history:
            occurred_at, event_type, h = r[6], r[7], r[8:]
            if occurred_at < slot:
                continue
            if event_type in t_.CREDITED:
                credit = t_.credit_fact(
                    event_type, occurred_at, h[7], h[8], h[10], h[14], zone, voided=False
                )
                changes.add(slot, credit, 1)
            if event_type == VOID and h[0] == VOIDED:
                voided.append((opportunity_id, occurred_at))
    if histories:
        c = visit.c
        names = (
            "created_at",
            "pipeline_id",
            "stage",
            "type",
            "tier",
            "ownership",
            "exit_kind",
            "dwell_seconds",
            "paused_seconds",
            "working_days",
        )
        completed = _fetch(
            conn,
            sa.select(*(c[n] for n in names))
            .join(touched, touched.c.opportunity_id == c.opportunity_id)
            .where(c.exited_at >= slot, c.exited_at <= as_of),
        )
        for exit_ in completed:
            facts = t_.visit_fact(dict(zip(names, exit_, strict=True)), zone, voided=False)
            changes.add(slot, facts, 1)
    if voided:
        void_changes(conn, visit, t.version, voided, changes, zone)
    return changes


def _fetch(conn: sa.Connection, query: sa.Select[Any]) -> list[Any]:
    """The rows of `query`; on PostgreSQL straight from the driver's cursor, all at once, whose
    instants, amounts and texts are what the domain reads (no per-row or per-value work)."""
    if conn.dialect.name != "postgresql":
        return list(conn.execute(query))
    compiled = query.compile(dialect=conn.dialect)
    raw = conn.connection.driver_connection
    assert raw is not None  # noqa: S101 - an open connection has one
    with raw.cursor() as cursor:
        cursor.execute(str(compiled), compiled.params)
        return list(cursor.fetchall())
