"""What the events of one hour up to an instant changed in the tallies, worked out from the
tables as the store works it out when it applies them (adapters/tally_tables.record): the
opportunities with an event in [hour, as_of] leave with their facts as of the hour's start and
join with those as of `as_of`; their creations and wins in it are credited; their visits
completed in it count; a void in it moves their visits and creation credit to `voided`."""

from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from projections.adapters.schema import Tables
from projections.domain import tallies as t_
from projections.domain.state import HISTORY_FIELDS, VOIDED

VOID = "OpportunityVoided"


def replay(
    conn: sa.Connection, t: Tables, hour: datetime, as_of: datetime, zone: ZoneInfo
) -> t_.Changes:
    v, o, visit = t.version.c, t.opportunity.c, t.visit
    touched = (
        sa.select(v.opportunity_id)
        .where(v.occurred_at >= hour, v.occurred_at <= as_of)
        .distinct()
        .subquery("touched")
    )
    # Each touched opportunity's rows: the last before the hour, those of the hour up to
    # `as_of`, and the first (whose owner a void's credit names).
    prior = t.version.alias("prior")
    last_before = (
        sa.select(sa.func.max(prior.c.version))
        .where(prior.c.opportunity_id == v.opportunity_id, prior.c.occurred_at < hour)
        .scalar_subquery()
    )
    rows = conn.execute(
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
        .where(
            v.occurred_at <= as_of,
            sa.or_(v.occurred_at >= hour, v.version == last_before, v.version == 1),
        )
        .order_by(o.id, v.version)
    )
    histories: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        histories[row[0]].append(row)
    changes = t_.Changes()
    voided_ids = set()
    for opportunity_id, history in histories.items():
        first = history[0]
        fixed = t_.Fixed(first[1].astimezone(zone).date(), *first[2:6])
        earlier = [r for r in history if r[6] < hour]
        before = [] if not earlier else t_.state_facts(fixed, earlier[-1][8:], zone)
        changes.move(hour, before, t_.state_facts(fixed, history[-1][8:], zone))
        for r in history[len(earlier) :]:
            occurred_at, event_type, h = r[6], r[7], r[8:]
            if event_type in t_.CREDITED:
                credit = t_.credit_fact(
                    event_type, occurred_at, h[7], h[8], h[10], h[14], zone, voided=False
                )
                changes.add(hour, credit, 1)
            if event_type == VOID and h[0] == VOIDED:
                voided_ids.add(opportunity_id)
                if first[7] == t_.CREATED:
                    h1 = first[8:]
                    facts = [
                        t_.credit_fact(
                            t_.CREATED, first[6], h1[7], h1[8], h1[10], None, zone, voided=flag
                        )
                        for flag in (False, True)
                    ]
                    changes.move(hour, facts[:1], facts[1:])
    if histories:
        exited_in_hour = sa.and_(visit.c.exited_at >= hour, visit.c.exited_at <= as_of)
        voided_in_hour = sa.and_(visit.c.voided_at >= hour, visit.c.voided_at <= as_of)
        completed = conn.execute(
            sa.select(visit)
            .join(touched, touched.c.opportunity_id == visit.c.opportunity_id)
            .where(
                visit.c.exited_at.is_not(None),
                visit.c.exited_at <= as_of,
                sa.or_(exited_in_hour, voided_in_hour),
            )
        ).mappings()
        for visit_row in completed:
            found = dict(visit_row)
            if found["exited_at"] >= hour:
                changes.add(hour, t_.visit_fact(found, zone, voided=False), 1)
            voided_at = found["voided_at"]
            if found["opportunity_id"] in voided_ids and voided_at is not None:
                changes.move(
                    hour,
                    [t_.visit_fact(found, zone, voided=False)],
                    [t_.visit_fact(found, zone, voided=True)],
                )
    return changes
