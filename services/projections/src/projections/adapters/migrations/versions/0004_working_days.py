"""Stage visits counted in working days of mainland China (SPEC §8.4), and bi_dwell's
conversion_working_days.

Working days come from the calendar in the business time zone, which the service knows and a
migration does not: the visits completed before this revision keep null working days (the
reports leave them out of the working-day mean) until `oppstream projections rebuild` counts
them. A visit with no paused time has no paused working days either: 0, not null.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from projections.adapters.migrations.views import bi_dwell_0004, views_0001

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bi_opportunity", sa.Column("visit_paused_working_days", sa.Float()))
    op.add_column("bi_stage_visit", sa.Column("paused_working_days", sa.Float()))
    op.add_column("bi_stage_visit", sa.Column("working_days", sa.Float()))
    op.execute(
        "UPDATE bi_opportunity SET visit_paused_working_days = 0 WHERE visit_paused_seconds = 0"
    )
    op.execute("UPDATE bi_stage_visit SET paused_working_days = 0 WHERE paused_seconds = 0")
    op.execute("DROP VIEW bi_dwell")
    op.execute(bi_dwell_0004(op.get_bind().dialect.name))


def downgrade() -> None:
    # Every view: SQLite copies a table to drop a column, and a view on it would stop that.
    for view in ("bi_funnel", "bi_dwell", "bi_win_rate"):
        op.execute(f"DROP VIEW {view}")
    with op.batch_alter_table("bi_stage_visit") as table:
        table.drop_column("working_days")
        table.drop_column("paused_working_days")
    with op.batch_alter_table("bi_opportunity") as table:
        table.drop_column("visit_paused_working_days")
    for statement in views_0001(op.get_bind().dialect.name):
        op.execute(statement)
