"""The first schema: opportunity facts with their next due time, the fired log, the outbox,
positions.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from chassis.sql.engines import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminders_opportunity",
        sa.Column("opportunity_id", sa.String(64), primary_key=True),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("tier", sa.String(10), nullable=False),
        sa.Column("ownership", sa.String(20), nullable=False),
        sa.Column("stage", sa.String(50), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("owner_id", sa.String(100)),
        sa.Column("team_id", sa.String(100)),
        sa.Column("last_progress_at", UtcDateTime, nullable=False),
        sa.Column("last_progress_version", sa.Integer, nullable=False),
        sa.Column("paused_until", sa.Date),
        sa.Column("revisit_on", sa.Date),
        sa.Column("contract_end_on", sa.Date),
        sa.Column("next_due_at", UtcDateTime),
    )
    op.create_index(
        "reminders_opportunity_due",
        "reminders_opportunity",
        ["next_due_at"],
        postgresql_where=sa.text("next_due_at IS NOT NULL"),
        sqlite_where=sa.text("next_due_at IS NOT NULL"),
    )
    op.create_table(
        "reminders_fired",
        sa.Column("opportunity_id", sa.String(64), primary_key=True),
        sa.Column("reminder_id", sa.String(36), primary_key=True),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("team_id", sa.String(100)),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("fired_at", UtcDateTime, nullable=False),
        sa.Column("reminder", sa.LargeBinary),
        sa.Column("command", sa.LargeBinary),
    )
    op.create_table(
        "reminders_outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("reminder_id", sa.String(36), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
    )
    op.create_table(
        "reminders_position",
        sa.Column("topic", sa.String(200), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "reminders_meta",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reminders_meta")
    op.drop_table("reminders_position")
    op.drop_table("reminders_outbox")
    op.drop_table("reminders_fired")
    op.drop_index("reminders_opportunity_due", table_name="reminders_opportunity")
    op.drop_table("reminders_opportunity")
