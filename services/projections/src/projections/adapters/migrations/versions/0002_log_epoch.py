"""The consumer's positions remember the log epoch they belong to (chassis.kafka.logwatch).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projection_position", sa.Column("log_epoch", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projection_position") as table:
        table.drop_column("log_epoch")
