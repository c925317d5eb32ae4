"""`bi_opportunity.classified_by`: the classification rule that gave the customer's tier, or
`manual` (SPEC §8.2); null for opportunities created before classification. The BI views group
by it too.

Revision ID: 0003_classified_by
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from projections.adapters.bi_views import SEGMENT_V1, SEGMENT_V3, VIEW_NAMES, view_statements

revision: str = "0003_classified_by"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _drop_views()
    op.add_column("bi_opportunity", sa.Column("classified_by", sa.String(100), nullable=True))
    for statement in view_statements(op.get_bind().dialect.name, SEGMENT_V3):
        op.execute(statement)


def downgrade() -> None:
    _drop_views()
    with op.batch_alter_table("bi_opportunity") as table:
        table.drop_column("classified_by")
    # The views as revision 0002 left them (bi_views.py's first version).
    for statement in view_statements(op.get_bind().dialect.name, SEGMENT_V1):
        op.execute(statement)


def _drop_views() -> None:
    for name in VIEW_NAMES:
        op.execute(f"DROP VIEW IF EXISTS {name}")
