"""The consumer's positions remember the log epoch they belong to (chassis.kafka.logwatch).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reminders_position", sa.Column("log_epoch", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reminders_position") as table:
        table.drop_column("log_epoch")
