"""The read model: BI tables, their views, and the consumer's bookkeeping.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chassis.sql.engines import UtcDateTime
from projections.adapters.columns import Money
from projections.adapters.migrations.views import views_0001

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_bi_opportunity_created_at", "bi_opportunity", ["created_at"], False),
    ("ix_bi_opportunity_owner_id", "bi_opportunity", ["owner_id"], False),
    ("ix_bi_opportunity_team_id", "bi_opportunity", ["team_id"], False),
    ("ix_projection_held_event_opportunity", "projection_held_event", ["opportunity_id"], False),
)


def upgrade() -> None:
    op.create_table(
        "bi_event",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("projected", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("opportunity_id", "version", name="pk_bi_event"),
    )
    op.create_table(
        "bi_opportunity",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("pipeline_id", sa.String(50), nullable=False),
        sa.Column("stage", sa.String(50), nullable=False),
        sa.Column("stage_index", sa.Integer()),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("customer_name", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(10), nullable=False),
        sa.Column("ownership", sa.String(10), nullable=False),
        sa.Column("industry", sa.String(100)),
        sa.Column("region", sa.String(100)),
        sa.Column("owner_id", sa.String(100)),
        sa.Column("team_id", sa.String(100)),
        sa.Column("title", sa.Text()),
        sa.Column("amount", Money()),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("expected_close_on", sa.Date()),
        sa.Column("source", sa.String(100)),
        sa.Column("lead_id", sa.String(100)),
        sa.Column("renewal_of", sa.String(64)),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_month", sa.String(7), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("stage_entered_at", UtcDateTime(), nullable=False),
        sa.Column("stage_entered_version", sa.Integer(), nullable=False),
        sa.Column("stage_entry_kind", sa.String(10), nullable=False),
        sa.Column("visit_no", sa.Integer(), nullable=False),
        sa.Column("visit_paused_seconds", sa.Float(), nullable=False),
        sa.Column("visit_deferred_seconds", sa.Float(), nullable=False),
        sa.Column("paused_at", UtcDateTime()),
        sa.Column("paused_until", sa.Date()),
        sa.Column("deferred_at", UtcDateTime()),
        sa.Column("revisit_on", sa.Date()),
        sa.Column("furthest_stage", sa.String(50), nullable=False),
        sa.Column("furthest_stage_index", sa.Integer(), nullable=False),
        sa.Column("last_progress_at", UtcDateTime(), nullable=False),
        sa.Column("last_event_at", UtcDateTime(), nullable=False),
        sa.Column("follow_up_count", sa.Integer(), nullable=False),
        sa.Column("closed_at", UtcDateTime()),
        sa.Column("closed_stage", sa.String(50)),
        sa.Column("won_amount", Money()),
        sa.Column("contract_ref", sa.String(100)),
        sa.Column("contract_start_on", sa.Date()),
        sa.Column("contract_end_on", sa.Date()),
        sa.Column("lost_reason", sa.String(100)),
        sa.Column("lost_competitor", sa.String(200)),
        sa.Column("void_reason", sa.Text()),
        sa.Column("awaiting_version", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name="pk_bi_opportunity"),
        postgresql_with={"fillfactor": 80},
    )
    op.create_table(
        "bi_opportunity_version",
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stage", sa.String(50), nullable=False),
        sa.Column("stage_index", sa.Integer()),
        sa.Column("furthest_stage_index", sa.Integer(), nullable=False),
        sa.Column("stage_entered_at", UtcDateTime(), nullable=False),
        sa.Column("visit_paused_seconds", sa.Float(), nullable=False),
        sa.Column("paused_at", UtcDateTime()),
        sa.Column("owner_id", sa.String(100)),
        sa.Column("team_id", sa.String(100)),
        sa.Column("amount", Money()),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("expected_close_on", sa.Date()),
        sa.Column("last_progress_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime()),
        sa.Column("won_amount", Money()),
        sa.PrimaryKeyConstraint("opportunity_id", "version", name="pk_bi_opportunity_version"),
    )
    op.create_table(
        "bi_stage_visit",
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("visit_no", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.String(50), nullable=False),
        sa.Column("stage", sa.String(50), nullable=False),
        sa.Column("stage_index", sa.Integer()),
        sa.Column("entered_at", UtcDateTime(), nullable=False),
        sa.Column("entered_version", sa.Integer(), nullable=False),
        sa.Column("entry_kind", sa.String(10), nullable=False),
        sa.Column("exited_at", UtcDateTime()),
        sa.Column("exited_version", sa.Integer()),
        sa.Column("exit_kind", sa.String(10)),
        sa.Column("exited_to", sa.String(50)),
        sa.Column("paused_seconds", sa.Float(), nullable=False),
        sa.Column("deferred_seconds", sa.Float(), nullable=False),
        sa.Column("dwell_seconds", sa.Float()),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("tier", sa.String(10), nullable=False),
        sa.Column("ownership", sa.String(10), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("voided_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("opportunity_id", "visit_no", name="pk_bi_stage_visit"),
        postgresql_with={"fillfactor": 80},
    )
    op.create_table(
        "projection_held_event",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_projection_held_event"),
    )
    op.create_table(
        "projection_poison",
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary()),
        sa.PrimaryKeyConstraint("topic", "partition", "offset", name="pk_projection_poison"),
    )
    op.create_table(
        "projection_position",
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name="pk_projection_position"),
    )
    op.create_table(
        "bi_pipeline_stage",
        sa.Column("pipeline_id", sa.String(50), nullable=False),
        sa.Column("stage", sa.String(50), nullable=False),
        sa.Column("stage_index", sa.Integer(), nullable=False),
        sa.Column("next_stage", sa.String(50)),
        sa.Column("is_last", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("tier", sa.String(10)),
        sa.Column("label_zh", sa.String(100), nullable=False),
        sa.Column("label_en", sa.String(100), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("forecast_category", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("pipeline_id", "stage", name="pk_bi_pipeline_stage"),
    )
    for name, table, columns, unique in INDEXES:
        op.create_index(name, table, columns, unique=unique)
    # The views as they were then (migrations/views.py), not as bi_views.py has them now.
    for statement in views_0001(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for view in ("bi_funnel", "bi_dwell", "bi_win_rate"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for table in (
        "bi_pipeline_stage",
        "projection_poison",
        "projection_held_event",
        "projection_position",
        "bi_opportunity_version",
        "bi_event",
        "bi_stage_visit",
        "bi_opportunity",
    ):
        op.drop_table(table)
