"""The customer records (SPEC §8.1): `bi_customer`, `bi_key_person`, the customer events held
for a missing version, and an index to join opportunities to their customer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-14
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chassis.sql.engines import UtcDateTime
from projections.adapters.columns import Money

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bi_customer",
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(10), nullable=False),
        sa.Column("ownership", sa.String(10), nullable=False),
        sa.Column("industry", sa.String(100)),
        sa.Column("region", sa.String(100)),
        sa.Column("registered_capital", Money(20)),
        sa.Column("employees", sa.BigInteger()),
        sa.Column("annual_revenue", Money(20)),
        sa.Column("classified_by", sa.String(100)),
        sa.Column("key_persons", sa.Integer(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("uscc", name="pk_bi_customer"),
    )
    op.create_table(
        "bi_key_person",
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200)),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("stance", sa.String(20), nullable=False),
        sa.Column("reports_to", sa.String(36)),
        sa.Column("phone", sa.String(50)),
        sa.Column("email", sa.String(200)),
        sa.Column("note", sa.Text()),
        sa.Column("added_through", sa.String(64)),
        sa.Column("added_at", UtcDateTime(), nullable=False),
        sa.Column("changed_at", UtcDateTime()),
        sa.Column("removed_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("uscc", "person_id", name="pk_bi_key_person"),
    )
    op.create_table(
        "projection_held_customer_event",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_projection_held_customer_event"),
    )
    op.create_index("ix_bi_customer_record_id", "bi_customer", ["record_id"], unique=True)
    op.create_index(
        "ix_projection_held_customer_event_opportunity",
        "projection_held_customer_event",
        ["opportunity_id"],
    )
    op.create_index("ix_bi_opportunity_uscc", "bi_opportunity", ["uscc"])


def downgrade() -> None:
    op.drop_index("ix_bi_opportunity_uscc", "bi_opportunity")
    for table in ("projection_held_customer_event", "bi_key_person", "bi_customer"):
        op.drop_table(table)
