"""`bi_opportunity.classified_by`: the classification rule that gave the customer's tier, or
`manual` (SPEC §8.2); null for opportunities created before classification. The BI views group
by it too.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from projections.adapters.bi_views import VIEW_NAMES
from projections.adapters.migrations.views import views_0005, views_0006

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _drop_views()
    op.add_column("bi_opportunity", sa.Column("classified_by", sa.String(100), nullable=True))
    for statement in views_0006(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    _drop_views()
    with op.batch_alter_table("bi_opportunity") as table:
        table.drop_column("classified_by")
    for statement in views_0005(op.get_bind().dialect.name):
        op.execute(statement)


def _drop_views() -> None:
    for name in VIEW_NAMES:
        op.execute(f"DROP VIEW IF EXISTS {name}")
