"""The outbox's log book (chassis.kafka.logbook), and outbox rows that send a fired timer's
command again without its reminder (after the broker lost its log).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminders_publish_log",
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("epoch", sa.String(64), nullable=False),
    )
    op.add_column(
        "reminders_outbox",
        sa.Column("command_only", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("reminders_outbox") as table:
        table.drop_column("command_only")
    op.drop_table("reminders_publish_log")
