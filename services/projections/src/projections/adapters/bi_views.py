"""The BI views (SPEC §4.3): §5's funnel, dwell and win-rate figures, and §9's targets and
competition standings, in portable SQL.

The figures' rows are per pipeline, stage and segment (type, tier, ownership, creation month,
the classification rule that gave the tier), over the live tables.

Counts are in every view, so a BI tool can add months or segments up and divide itself; the
rates are for one row. Voided opportunities (mistakes, duplicates) are left out, as in the API.
Only "now" (for the age of open visits) and reading a JSON array (a competition's teams, tiers
and types) differ between the dialects.

A change of a view is a migration: it freezes the SQL the revisions create in
migrations/views.py, which must end equal to this (tests/integration/test_bi_tables.py).
"""

# ruff: noqa: S608 - the views are constant SQL; no input ever reaches them

import sqlalchemy as sa

from projections.domain.standings import COUNTED

FIGURE_VIEWS = ("bi_funnel", "bi_dwell", "bi_win_rate")
PLAN_VIEWS = ("bi_target", "bi_competition_standing")
VIEW_NAMES = (*FIGURE_VIEWS, *PLAN_VIEWS)

# The columns of `bi_opportunity` the views group by, as each revision that creates the views
# has them: 0001 the first, 0006 with `classified_by`. Today's is the last.
SEGMENT_V1 = ("type", "tier", "ownership", "created_month")
SEGMENT_V6 = (*SEGMENT_V1, "classified_by")
SEGMENT = SEGMENT_V6

_REACHED = "CASE WHEN o.status = 'won' OR o.furthest_stage_index >= s.stage_index THEN 1 ELSE 0 END"
_REACHED_NEXT = (
    "CASE WHEN o.status = 'won' OR (s.is_last = 0 AND o.furthest_stage_index > s.stage_index) "
    "THEN 1 ELSE 0 END"
)
_ACTIVE = "o.status IN ('open', 'paused', 'deferred', 'pooled')"


def bi_funnel(segment: str) -> str:
    return f"""
CREATE VIEW bi_funnel AS
SELECT x.*, 1.0 * x.reached_next / NULLIF(x.reached, 0) AS conversion_rate
FROM (
    SELECT s.pipeline_id, s.stage, s.stage_index, s.next_stage, {segment},
        COUNT(*) AS opportunities,
        SUM({_REACHED}) AS reached,
        SUM({_REACHED_NEXT}) AS reached_next,
        SUM(CASE WHEN o.status = 'won' THEN 1 ELSE 0 END) AS won,
        SUM(CASE WHEN {_ACTIVE} AND o.stage = s.stage THEN 1 ELSE 0 END) AS open_opportunities
    FROM bi_pipeline_stage s JOIN bi_opportunity o ON o.pipeline_id = s.pipeline_id
    WHERE o.status <> 'voided'
    GROUP BY s.pipeline_id, s.stage, s.stage_index, s.next_stage, {segment}
) x
"""


NOW = {
    "postgresql": "EXTRACT(EPOCH FROM CURRENT_TIMESTAMP)",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
EPOCH = {
    "postgresql": "EXTRACT(EPOCH FROM {})",
    "sqlite": "((julianday({}) - 2440587.5) * 86400.0)",
}


def _bi_dwell(dialect: str, segment: str) -> str:
    now, epoch = NOW[dialect], EPOCH[dialect]
    age = (
        f"{now} - {epoch.format('v.entered_at')} - v.paused_seconds - "
        f"CASE WHEN o.paused_at IS NULL THEN 0 ELSE {now} - {epoch.format('o.paused_at')} END"
    )
    # Working days (SPEC §8.4) are the mean over the completed visits whose working days are
    # known: all of them, unless visits completed before the read model counted working days
    # were never rebuilt.
    return f"""
CREATE VIEW bi_dwell AS
SELECT x.*, x.total_days / NULLIF(x.completed_visits, 0) AS conversion_days,
    x.total_working_days / NULLIF(x.visits_in_working_days, 0) AS conversion_working_days
FROM (
    SELECT v.pipeline_id, v.stage, v.stage_index, {segment},
        SUM(CASE WHEN v.exited_at IS NOT NULL THEN 1 ELSE 0 END) AS completed_visits,
        SUM(CASE WHEN v.exited_at IS NOT NULL THEN v.dwell_seconds ELSE 0 END) / 86400.0
            AS total_days,
        SUM(CASE WHEN v.exited_at IS NOT NULL THEN v.paused_seconds ELSE 0 END) / 86400.0
            AS paused_days,
        SUM(CASE WHEN v.working_days IS NOT NULL THEN 1 ELSE 0 END) AS visits_in_working_days,
        SUM(CASE WHEN v.working_days IS NOT NULL THEN v.working_days ELSE 0 END)
            AS total_working_days,
        SUM(CASE WHEN v.exited_at IS NULL THEN 1 ELSE 0 END) AS open_visits,
        AVG(CASE WHEN v.exited_at IS NULL THEN {age} END) / 86400.0 AS open_mean_age_days
    FROM bi_stage_visit v JOIN bi_opportunity o ON o.id = v.opportunity_id
    WHERE o.status <> 'voided'
    GROUP BY v.pipeline_id, v.stage, v.stage_index, {segment}
) x
"""


def bi_win_rate(segment: str) -> str:
    return f"""
CREATE VIEW bi_win_rate AS
SELECT x.*, x.won + x.lost AS closed, 1.0 * x.won / NULLIF(x.won + x.lost, 0) AS win_rate
FROM (
    SELECT s.pipeline_id, s.stage, s.stage_index, {segment},
        SUM(CASE WHEN o.status = 'won' THEN 1 ELSE 0 END) AS won,
        SUM(CASE WHEN o.status = 'lost' AND o.furthest_stage_index >= s.stage_index
            THEN 1 ELSE 0 END) AS lost
    FROM bi_pipeline_stage s JOIN bi_opportunity o ON o.pipeline_id = s.pipeline_id
    WHERE o.status IN ('won', 'lost')
    GROUP BY s.pipeline_id, s.stage, s.stage_index, {segment}
) x
"""


def view_statements(dialect: str, segment: tuple[str, ...] = SEGMENT) -> list[str]:
    """CREATE VIEW statements for `dialect` ('postgresql' or 'sqlite'), grouped by the
    `segment` columns of `bi_opportunity` (a migration names the version it creates)."""
    columns = ", ".join(f"o.{name}" for name in segment)
    return [bi_funnel(columns), _bi_dwell(dialect, columns), bi_win_rate(columns)]


BI_TARGET = """
CREATE VIEW bi_target AS
SELECT c.target_id, c.period, c.scope, c.scope_id, c.metric, c.value, c.team_id, c.reason,
    c.actor AS set_by, c.occurred_at AS set_at, n.changes
FROM bi_target_change c
JOIN (
    SELECT target_id, MAX(version) AS version, COUNT(*) AS changes
    FROM bi_target_change GROUP BY target_id
) n ON n.target_id = c.target_id AND n.version = c.version
"""

# Whether a JSON array of strings (text) holds a value.
MEMBER = {
    "postgresql": (
        "EXISTS (SELECT 1 FROM json_array_elements_text(CAST({array} AS json)) AS m(item) "
        "WHERE m.item = {value})"
    ),
    "sqlite": "EXISTS (SELECT 1 FROM json_each({array}) AS m WHERE m.value = {value})",
}


def _bi_competition_standing(dialect: str) -> str:
    member = MEMBER[dialect]
    counted = " ".join(f"WHEN '{metric}' THEN '{event}'" for metric, event in COUNTED.items())
    amounts = "c.metric = 'won_amount'"
    currency = f"CASE WHEN {amounts} THEN v.currency END"

    def named(array: str, value: str) -> str:
        return f"({array} = '[]' OR {member.format(array=array, value=value)})"

    # Each row of bi_opportunity_version is an event with the owner and team after it, which
    # are those credited with it (decision 0042). Amounts are per currency: the API counts
    # the report currency's only, which the database does not know.
    return f"""
CREATE VIEW bi_competition_standing AS
SELECT x.*, RANK() OVER (PARTITION BY x.competition_id, x.currency ORDER BY x.value DESC) AS rank
FROM (
    SELECT c.competition_id, c.metric, v.owner_id, MIN(v.team_id) AS team_id,
        {currency} AS currency,
        CASE WHEN {amounts} THEN ROUND(SUM(v.won_amount), 2) ELSE COUNT(*) END AS value,
        COUNT(*) AS events
    FROM bi_competition c
    JOIN bi_opportunity_version v ON v.event_type = CASE c.metric {counted} END
        AND v.occurred_at >= c.from_at AND v.occurred_at < c.to_at
    JOIN bi_opportunity o ON o.id = v.opportunity_id
    WHERE o.status <> 'voided' AND v.owner_id IS NOT NULL
        AND {named("c.team_ids", "v.team_id")}
        AND {named("c.types", "o.type")}
        AND {named("c.tiers", "o.tier")}
    GROUP BY c.competition_id, c.metric, v.owner_id, {currency}
) x
"""


def plan_view_statements(dialect: str) -> list[str]:
    """CREATE VIEW statements of `bi_target` and `bi_competition_standing` for `dialect`."""
    return [BI_TARGET, _bi_competition_standing(dialect)]


def create_views(conn: sa.Connection) -> None:
    dialect = conn.dialect.name
    for statement in [*view_statements(dialect), *plan_view_statements(dialect)]:
        conn.exec_driver_sql(statement)


def drop_views(conn: sa.Connection) -> None:
    for name in VIEW_NAMES:
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
