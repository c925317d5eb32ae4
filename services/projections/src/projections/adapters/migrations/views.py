"""The BI views as the revisions that changed them created them, frozen: a fresh database
passes through every revision, each of which needs the SQL of its time, not bi_views.py's now.

A revision that changes a view adds its SQL here; bi_views.py keeps the newest, and
tests/integration/test_bi_tables.py checks the two agree.
"""

# ruff: noqa: S608 - the views are constant SQL; no input ever reaches them

from projections.adapters.bi_views import (
    EPOCH,
    NOW,
    SEGMENT_V1,
    SEGMENT_V6,
    bi_funnel,
    bi_win_rate,
    plan_view_statements,
    view_statements,
)

_SEGMENT = ", ".join(f"o.{name}" for name in SEGMENT_V1)
# What 0004 added to bi_dwell: conversion days in working days (SPEC §8.4).
_WORKING_MEAN = (
    ",\n    x.total_working_days / NULLIF(x.visits_in_working_days, 0) AS conversion_working_days"
)
_WORKING_SUMS = """
        SUM(CASE WHEN v.working_days IS NOT NULL THEN 1 ELSE 0 END) AS visits_in_working_days,
        SUM(CASE WHEN v.working_days IS NOT NULL THEN v.working_days ELSE 0 END)
            AS total_working_days,"""


def views_0001(dialect: str) -> list[str]:
    """The views 0001 created: bi_funnel and bi_win_rate are still bi_views.py's first
    version; bi_dwell is 0001's own (0004 changed it)."""
    return [bi_funnel(_SEGMENT), _bi_dwell(dialect, "", ""), bi_win_rate(_SEGMENT)]


def bi_dwell_0004(dialect: str) -> str:
    return _bi_dwell(dialect, _WORKING_MEAN, _WORKING_SUMS)


def _bi_dwell(dialect: str, means: str, sums: str) -> str:
    now, epoch = NOW[dialect], EPOCH[dialect]
    age = (
        f"{now} - {epoch.format('v.entered_at')} - v.paused_seconds - "
        f"CASE WHEN o.paused_at IS NULL THEN 0 ELSE {now} - {epoch.format('o.paused_at')} END"
    )
    return f"""
CREATE VIEW bi_dwell AS
SELECT x.*, x.total_days / NULLIF(x.completed_visits, 0) AS conversion_days{means}
FROM (
    SELECT v.pipeline_id, v.stage, v.stage_index, {_SEGMENT},
        SUM(CASE WHEN v.exited_at IS NOT NULL THEN 1 ELSE 0 END) AS completed_visits,
        SUM(CASE WHEN v.exited_at IS NOT NULL THEN v.dwell_seconds ELSE 0 END) / 86400.0
            AS total_days,
        SUM(CASE WHEN v.exited_at IS NOT NULL THEN v.paused_seconds ELSE 0 END) / 86400.0
            AS paused_days,{sums}
        SUM(CASE WHEN v.exited_at IS NULL THEN 1 ELSE 0 END) AS open_visits,
        AVG(CASE WHEN v.exited_at IS NULL THEN {age} END) / 86400.0 AS open_mean_age_days
    FROM bi_stage_visit v JOIN bi_opportunity o ON o.id = v.opportunity_id
    WHERE o.status <> 'voided'
    GROUP BY v.pipeline_id, v.stage, v.stage_index, {_SEGMENT}
) x
"""


def views_0005(dialect: str) -> list[str]:
    """The views 0004 left and 0005 kept: 0001's funnel and win rate, 0004's bi_dwell."""
    first = views_0001(dialect)
    return [first[0], bi_dwell_0004(dialect), first[2]]


def views_0006(dialect: str) -> list[str]:
    """The views 0006 created: grouped by `classified_by` too."""
    return view_statements(dialect, SEGMENT_V6)


def views_0008(dialect: str) -> list[str]:
    """The views 0008 created: `bi_target` and `bi_competition_standing`."""
    return plan_view_statements(dialect)
