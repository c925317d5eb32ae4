"""The completed stage visits of a cohort and of the company's trailing one (conversion days,
SPEC §5), read from `bi_stage_visit`."""

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from projections.adapters.filters import beyond_segment, filters
from projections.adapters.schema import Tables
from projections.adapters.tallied import Only
from projections.application.read_model import CompletedVisits, Query


def completed_visits(
    t: Tables,
    cohort_of: Callable[[Query], sa.Subquery],
    conn: sa.Connection,
    q: Query,
    company: Query,
    base: Query,
    only: Only | None,
) -> tuple[list[CompletedVisits], list[CompletedVisits]]:
    """Completed visits of both cohorts by stage, segment and how they ended."""
    v = t.visit
    conditions: list[sa.ColumnElement[bool]] = [v.c.exited_at.is_not(None)]
    joined = beyond_segment(q)
    if not joined:
        # Visits carry the facts that never change (but `classified_by`) and when the
        # opportunity was voided: no join with the opportunities.
        cols: Any = v.c
        source: sa.FromClause = v
        conditions += filters(v.c, base, segment=True)
        if not q.include_voided:
            voided_then: sa.ColumnElement[bool] = v.c.voided_at.is_not(None)
            if q.as_of is not None:
                voided_then = sa.and_(voided_then, v.c.voided_at <= q.as_of)
            conditions.append(~voided_then)
    else:
        s = cohort_of(replace(base, include_voided=q.include_voided))
        cols, source = s.c, v.join(s, s.c.id == v.c.opportunity_id)
    if q.as_of is not None:
        conditions.append(v.c.exited_at <= q.as_of)
    mine = sa.and_(sa.true(), *filters(cols, q, segment=False))
    theirs = sa.and_(sa.true(), *filters(cols, company, segment=False))
    if only is not None:  # the tallies answer for the rest: no join (see `tallied`)
        source = source.join(only.ids, only.ids.c.id == v.c.opportunity_id)
        mine = sa.and_(mine, only.parts[0](v.c.created_at))
        theirs = sa.and_(theirs, only.parts[1](v.c.created_at))

    counted = v.c.working_days.is_not(None)

    def sums(part: sa.ColumnElement[bool]) -> list[sa.ColumnElement[Any]]:
        return [
            sa.func.sum(sa.case((part, 1), else_=0)),
            sa.func.sum(sa.case((part, v.c.dwell_seconds), else_=0.0)),
            sa.func.sum(sa.case((part, v.c.paused_seconds), else_=0.0)),
            sa.func.sum(sa.case((sa.and_(part, counted), 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(part, counted), v.c.working_days), else_=0.0)),
        ]

    group = (v.c.pipeline_id, v.c.stage, cols.tier, cols.ownership, v.c.exit_kind)
    rows = conn.execute(
        sa.select(*group, *sums(mine), *sums(theirs))
        .select_from(source)
        .where(*conditions, sa.or_(mine, theirs))
        .group_by(*group)
    )
    found: tuple[list[CompletedVisits], list[CompletedVisits]] = ([], [])
    for pipeline, stage, tier, ownership, kind, *figures in rows:
        for part in (0, 1):
            count, dwell, paused, counted_n, working = figures[5 * part : 5 * part + 5]
            if count:
                found[part].append(
                    CompletedVisits(
                        pipeline,
                        stage,
                        tier,
                        ownership,
                        kind,
                        count,
                        float(dwell),
                        float(paused),
                        int(counted_n),
                        float(working),
                    )
                )
    return found
