"""Targets, competitions and deferrals (SPEC §9, issue 14): `bi_target_change` (one row per
target event), `bi_competition` (a competition's latest definition), `bi_deferral` (one row per
deferral episode); a manager's forecast category on `bi_opportunity` and
`bi_opportunity_version`, and the deferral's coded reason and note on `bi_opportunity`. Rows of
events applied before this revision are not there until `oppstream projections rebuild`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chassis.sql.engines import UtcDateTime
from projections.adapters.bi_views import VIEW_NAMES
from projections.adapters.columns import Money
from projections.adapters.migrations.views import views_0006

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bi_opportunity", sa.Column("forecast_category_override", sa.String(20)))
    op.add_column("bi_opportunity", sa.Column("deferred_reason", sa.String(100)))
    op.add_column("bi_opportunity", sa.Column("deferred_note", sa.Text()))
    op.add_column("bi_opportunity_version", sa.Column("forecast_category_override", sa.String(20)))
    op.create_table(
        "bi_target_change",
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("scope_id", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(30), nullable=False),
        sa.Column("value", Money(), nullable=False),
        sa.Column("previous_value", Money()),
        sa.Column("reason", sa.Text()),
        sa.Column("team_id", sa.String(100)),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("target_id", "version", name="pk_bi_target_change"),
    )
    op.create_table(
        "bi_competition",
        sa.Column("competition_id", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(30), nullable=False),
        sa.Column("from_at", UtcDateTime(), nullable=False),
        sa.Column("to_at", UtcDateTime(), nullable=False),
        sa.Column("team_ids", sa.Text(), nullable=False),
        sa.Column("tiers", sa.Text(), nullable=False),
        sa.Column("types", sa.Text(), nullable=False),
        sa.Column("defined_at", UtcDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("competition_id", name="pk_bi_competition"),
    )
    op.create_table(
        "bi_deferral",
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("deferred_version", sa.Integer(), nullable=False),
        sa.Column("deferred_at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("revisit_on", sa.Date(), nullable=False),
        sa.Column("ended_at", UtcDateTime()),
        sa.Column("ended_version", sa.Integer()),
        sa.Column("end_kind", sa.String(20)),
        sa.PrimaryKeyConstraint("opportunity_id", "deferred_version", name="pk_bi_deferral"),
    )


def downgrade() -> None:
    for name in ("bi_deferral", "bi_competition", "bi_target_change"):
        op.drop_table(name)
    # SQLite copies a table to drop a column, and a view on it would stop that.
    for name in VIEW_NAMES:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("bi_opportunity_version") as table:
        table.drop_column("forecast_category_override")
    with op.batch_alter_table("bi_opportunity") as table:
        table.drop_column("deferred_note")
        table.drop_column("deferred_reason")
        table.drop_column("forecast_category_override")
    for statement in views_0006(op.get_bind().dialect.name):
        op.execute(statement)
