"""The reminder inbox and delivery (SPEC §10.2): the owner of each fired timer (filled in from
the reminder bytes of the rows fired before), indexes for the inbox, and the deliveries of
fired reminders to the rules file's channels.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from chassis.sql.engines import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OWNER_FROM_REMINDER = {
    "sqlite": "json_extract(CAST(reminder AS TEXT), '$.owner_id')",
    "postgresql": "convert_from(reminder, 'UTF8')::jsonb ->> 'owner_id'",
}


def upgrade() -> None:
    op.add_column("reminders_fired", sa.Column("owner_id", sa.String(100)))
    owner = _OWNER_FROM_REMINDER[op.get_bind().dialect.name]
    op.execute(f"UPDATE reminders_fired SET owner_id = {owner} WHERE reminder IS NOT NULL")  # noqa: S608 - constant SQL
    op.create_index("reminders_fired_owner", "reminders_fired", ["owner_id", "fired_at"])
    op.create_index("reminders_fired_team", "reminders_fired", ["team_id", "fired_at"])
    op.create_index("reminders_fired_at", "reminders_fired", ["fired_at"])
    op.create_table(
        "reminders_delivery",
        sa.Column("delivery_id", sa.String(36), primary_key=True),
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("reminder_id", sa.String(36), nullable=False),
        sa.Column("channel_id", sa.String(100), nullable=False),
        sa.Column("team_id", sa.String(100)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=False),
        sa.Column("last_error", sa.String(200)),
        sa.Column("delivered_at", UtcDateTime),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "reminders_delivery_due",
        "reminders_delivery",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index("reminders_delivery_reminder", "reminders_delivery", ["reminder_id"])
    op.create_index("reminders_delivery_status", "reminders_delivery", ["status", "created_at"])


def downgrade() -> None:
    op.drop_table("reminders_delivery")
    op.drop_index("reminders_fired_at", table_name="reminders_fired")
    op.drop_index("reminders_fired_team", table_name="reminders_fired")
    op.drop_index("reminders_fired_owner", table_name="reminders_fired")
    with op.batch_alter_table("reminders_fired") as table:
        table.drop_column("owner_id")
