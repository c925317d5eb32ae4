"""Tallies (issue 17, domain/tallies.py): `bi_tally_<name>`, `bi_tally_<name>_by_day`,
`_by_hour` and `_by_slot` for the cohort, forecast, owned, wins, visits and credits tallies, `projection_tallies_missing`,
and an index of `bi_opportunity_version` by `occurred_at` (the `as_of` day's events).

A database that already holds opportunities gets empty tallies and a row in
`projection_tallies_missing`: the reports read the tables alone (exact, as before, and as
slow) until `oppstream projections rebuild` fills the tallies; /readyz says so meanwhile.
The tables' shapes are those `tally_tables.SHAPES` gives at this revision; a change to them
is a new revision.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from chassis.sql.engines import UtcDateTime
from projections.adapters.tally_tables import LEADS, MISSING, SHAPES

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REASON = "the database was migrated with events applied: run `oppstream projections rebuild`"


def upgrade() -> None:
    for name, (keys, measures) in SHAPES.items():
        for suffix, lead, kind in LEADS:
            table = f"bi_tally_{name}{suffix}"
            key = [*([] if lead is None else [(lead, kind)]), *keys]
            op.create_table(
                table,
                *(sa.Column(k, kind, nullable=False) for k, kind in key),
                *(sa.Column(m, kind, nullable=False) for m, kind in measures),
                sa.PrimaryKeyConstraint(*(k for k, _ in key), name=f"pk_{table}"),
            )
    missing = op.create_table(
        MISSING,
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("reason", name=f"pk_{MISSING}"),
    )
    op.create_index(
        "ix_bi_opportunity_version_occurred_at", "bi_opportunity_version", ["occurred_at"]
    )
    applied = op.get_bind().execute(sa.text("SELECT 1 FROM bi_opportunity LIMIT 1")).first()
    if applied is not None:
        op.bulk_insert(missing, [{"reason": REASON, "since": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_index("ix_bi_opportunity_version_occurred_at", "bi_opportunity_version")
    op.drop_table(MISSING)
    for name in SHAPES:
        for suffix, _, _ in LEADS:
            op.drop_table(f"bi_tally_{name}{suffix}")
