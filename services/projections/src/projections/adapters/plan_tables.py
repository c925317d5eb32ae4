"""The tables of SPEC §9 and the deferral analysis (migration 0007): `bi_target_change` (one
row per target event), `bi_competition` (one row per competition, its latest definition) and
`bi_deferral` (one row per deferral episode); built by `schema.build_tables`."""

from collections.abc import Callable

import sqlalchemy as sa

from chassis.sql.engines import UtcDateTime
from projections.adapters.columns import Money


def plan_tables(t: Callable[..., sa.Table]) -> tuple[sa.Table, sa.Table, sa.Table]:
    target_change = t(
        "bi_target_change",
        sa.Column("target_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("scope_id", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(30), nullable=False),
        sa.Column("value", Money(), nullable=False),
        sa.Column("previous_value", Money()),
        sa.Column("reason", sa.Text),
        sa.Column("team_id", sa.String(100)),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
    )
    competition = t(
        "bi_competition",
        sa.Column("competition_id", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(30), nullable=False),
        sa.Column("from_at", UtcDateTime, nullable=False),
        sa.Column("to_at", UtcDateTime, nullable=False),
        # JSON arrays as text; [] means any.
        sa.Column("team_ids", sa.Text, nullable=False),
        sa.Column("tiers", sa.Text, nullable=False),
        sa.Column("types", sa.Text, nullable=False),
        sa.Column("defined_at", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    deferral = t(
        "bi_deferral",
        sa.Column("opportunity_id", sa.String(64), primary_key=True),
        sa.Column("deferred_version", sa.Integer, primary_key=True),
        sa.Column("deferred_at", UtcDateTime, nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("revisit_on", sa.Date, nullable=False),
        sa.Column("ended_at", UtcDateTime),
        sa.Column("ended_version", sa.Integer),
        sa.Column("end_kind", sa.String(20)),
    )
    return target_change, competition, deferral
