"""The views `bi_target` (each target as it stands now) and `bi_competition_standing` (each
competition's standings, credited to the owner at each event) over the tables of 0007
(SPEC §9, issue 14).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

from projections.adapters.migrations.views import views_0008

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for statement in views_0008(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for name in ("bi_competition_standing", "bi_target"):
        op.execute(f"DROP VIEW IF EXISTS {name}")
