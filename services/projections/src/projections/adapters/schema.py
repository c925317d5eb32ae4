"""The projections database: BI tables (SPEC §4.3) and our bookkeeping, as SQLAlchemy Core.

Every event-derived table is built by `build_tables(prefix)`: the live set has no prefix, a
rebuild fills a prefixed shadow set and renames it into place (entrypoints/rebuild.py, shadow.py).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from chassis.sql.engines import UtcDateTime
from projections.adapters.columns import COMPANY_FIGURE, Amount, Money
from projections.adapters.plan_tables import plan_tables
from projections.adapters.tally_tables import Tally, table_names, tally_tables

NAMING = {"pk": "pk_%(table_name)s"}
# Tables whose rows are updated as events arrive keep room on each page for the new version.
FILLFACTOR = 80


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool = False


# Secondary indexes by canonical name: a rebuild creates them after the bulk load. Few on
# purpose: every index costs each write, and the reports scan the cohort anyway; columns that
# change with most events (status, stage, times) carry none, so PostgreSQL updates rows in
# place (HOT, helped by the fill factor below).
INDEXES = (
    Index("ix_bi_opportunity_created_at", "bi_opportunity", ("created_at",)),
    Index("ix_bi_opportunity_owner_id", "bi_opportunity", ("owner_id",)),
    Index("ix_bi_opportunity_team_id", "bi_opportunity", ("team_id",)),
    Index("ix_bi_opportunity_uscc", "bi_opportunity", ("uscc",)),
    # The opportunities with an event on a report's `as_of` day (adapters/tallied.py).
    Index("ix_bi_opportunity_version_occurred_at", "bi_opportunity_version", ("occurred_at",)),
    Index("ix_projection_held_event_opportunity", "projection_held_event", ("opportunity_id",)),
    Index("ix_bi_customer_record_id", "bi_customer", ("record_id",), unique=True),
    Index(
        "ix_projection_held_customer_event_opportunity",
        "projection_held_customer_event",
        ("opportunity_id",),
    ),
)

# The tables a rebuild replaces (everything the events decide).
EVENT_TABLES = (
    "bi_opportunity",
    "bi_stage_visit",
    "bi_event",
    "bi_opportunity_version",
    "projection_position",
    "projection_held_event",
    "projection_poison",
    "bi_customer",
    "bi_key_person",
    "projection_held_customer_event",
    "bi_target_change",
    "bi_competition",
    "bi_deferral",
    *table_names(),
)


@dataclass(frozen=True)
class Tables:
    metadata: sa.MetaData
    prefix: str
    opportunity: sa.Table
    visit: sa.Table
    event: sa.Table
    version: sa.Table
    position: sa.Table
    held: sa.Table
    poison: sa.Table
    customer: sa.Table
    key_person: sa.Table
    held_customer: sa.Table
    target_change: sa.Table
    competition: sa.Table
    deferral: sa.Table
    tallies: dict[str, Tally]
    tallies_missing: sa.Table

    def by_canonical_name(self) -> dict[str, sa.Table]:
        return {t.name.removeprefix(self.prefix): t for t in self.metadata.sorted_tables}


def build_tables(prefix: str = "", *, with_indexes: bool = True, unlogged: bool = False) -> Tables:
    """The event-derived tables, named with `prefix`; `unlogged` (PostgreSQL only) for a
    rebuild's shadow set, which nobody reads until it is complete."""
    metadata = sa.MetaData(naming_convention=NAMING)

    def t(name: str, *columns: sa.Column[Any], fillfactor: int | None = None) -> sa.Table:
        options: dict[str, Any] = (
            {"postgresql_with": {"fillfactor": fillfactor}} if fillfactor else {}
        )
        if unlogged:
            options["prefixes"] = ["UNLOGGED"]
        table: sa.Table = sa.Table(prefix + name, metadata, *columns, **options)
        return table

    opportunity = t(
        "bi_opportunity",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("pipeline_id", sa.String(50), nullable=False),
        sa.Column("stage", sa.String(50), nullable=False),
        sa.Column("stage_index", sa.Integer),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("customer_name", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(10), nullable=False),
        sa.Column("ownership", sa.String(10), nullable=False),
        sa.Column("industry", sa.String(100)),
        sa.Column("region", sa.String(100)),
        sa.Column("owner_id", sa.String(100)),
        sa.Column("team_id", sa.String(100)),
        sa.Column("title", sa.Text),
        sa.Column("amount", Amount),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("expected_close_on", sa.Date),
        sa.Column("source", sa.String(100)),
        sa.Column("lead_id", sa.String(100)),
        sa.Column("renewal_of", sa.String(64)),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_month", sa.String(7), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("stage_entered_at", UtcDateTime, nullable=False),
        sa.Column("stage_entered_version", sa.Integer, nullable=False),
        sa.Column("stage_entry_kind", sa.String(10), nullable=False),
        sa.Column("visit_no", sa.Integer, nullable=False),
        sa.Column("visit_paused_seconds", sa.Float, nullable=False),
        sa.Column("visit_deferred_seconds", sa.Float, nullable=False),
        sa.Column("paused_at", UtcDateTime),
        sa.Column("paused_until", sa.Date),
        sa.Column("deferred_at", UtcDateTime),
        sa.Column("revisit_on", sa.Date),
        sa.Column("furthest_stage", sa.String(50), nullable=False),
        sa.Column("furthest_stage_index", sa.Integer, nullable=False),
        sa.Column("last_progress_at", UtcDateTime, nullable=False),
        sa.Column("last_event_at", UtcDateTime, nullable=False),
        sa.Column("follow_up_count", sa.Integer, nullable=False),
        sa.Column("closed_at", UtcDateTime),
        sa.Column("closed_stage", sa.String(50)),
        sa.Column("won_amount", Amount),
        sa.Column("contract_ref", sa.String(100)),
        sa.Column("contract_start_on", sa.Date),
        sa.Column("contract_end_on", sa.Date),
        sa.Column("lost_reason", sa.String(100)),
        sa.Column("lost_competitor", sa.String(200)),
        sa.Column("void_reason", sa.Text),
        sa.Column("awaiting_version", sa.Integer),
        # Columns added since, in the order their migrations add them (a rebuilt table and a
        # migrated one alike). Null: not known (paused before working days were counted; a
        # rebuild counts them).
        sa.Column("visit_paused_working_days", sa.Float),
        sa.Column("classified_by", sa.String(100)),
        sa.Column("forecast_category_override", sa.String(20)),
        sa.Column("deferred_reason", sa.String(100)),
        sa.Column("deferred_note", sa.Text),
        fillfactor=FILLFACTOR,
    )
    visit = t(
        "bi_stage_visit",
        sa.Column("opportunity_id", sa.String(64), primary_key=True),
        sa.Column("visit_no", sa.Integer, primary_key=True),
        sa.Column("pipeline_id", sa.String(50), nullable=False),
        sa.Column("stage", sa.String(50), nullable=False),
        sa.Column("stage_index", sa.Integer),
        sa.Column("entered_at", UtcDateTime, nullable=False),
        sa.Column("entered_version", sa.Integer, nullable=False),
        sa.Column("entry_kind", sa.String(10), nullable=False),
        sa.Column("exited_at", UtcDateTime),
        sa.Column("exited_version", sa.Integer),
        sa.Column("exit_kind", sa.String(10)),
        sa.Column("exited_to", sa.String(50)),
        sa.Column("paused_seconds", sa.Float, nullable=False),
        sa.Column("deferred_seconds", sa.Float, nullable=False),
        sa.Column("dwell_seconds", sa.Float),
        # The opportunity's facts that never change, and when it was voided (if it was).
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("tier", sa.String(10), nullable=False),
        sa.Column("ownership", sa.String(10), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("voided_at", UtcDateTime),
        # Working days of mainland China (SPEC §8.4), added since (migration 0004, in its
        # order); null when not known (see above).
        sa.Column("paused_working_days", sa.Float),
        sa.Column("working_days", sa.Float),
        fillfactor=FILLFACTOR,
    )
    event = t(
        "bi_event",
        sa.Column("event_id", sa.String(64), nullable=False),
        # The event id is derived from (opportunity, version): this key is unique as it is.
        sa.Column("opportunity_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("projected", sa.Boolean, nullable=False),
    )
    version = t(
        "bi_opportunity_version",
        sa.Column("opportunity_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stage", sa.String(50), nullable=False),
        sa.Column("stage_index", sa.Integer),
        sa.Column("furthest_stage_index", sa.Integer, nullable=False),
        sa.Column("stage_entered_at", UtcDateTime, nullable=False),
        sa.Column("visit_paused_seconds", sa.Float, nullable=False),
        sa.Column("paused_at", UtcDateTime),
        sa.Column("owner_id", sa.String(100)),
        sa.Column("team_id", sa.String(100)),
        sa.Column("amount", Amount),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("expected_close_on", sa.Date),
        sa.Column("last_progress_at", UtcDateTime, nullable=False),
        sa.Column("closed_at", UtcDateTime),
        sa.Column("won_amount", Amount),
        sa.Column("forecast_category_override", sa.String(20)),
    )
    position = t(
        "projection_position",
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        # The log epoch of the record before next_offset (chassis.kafka.logwatch).
        sa.Column("log_epoch", sa.String(64)),
    )
    held = t(
        "projection_held_event",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
    )
    poison = t(
        "projection_poison",
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("offset", sa.BigInteger, primary_key=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("value", sa.LargeBinary),
    )
    customer, key_person, held_customer = _customer_tables(t)
    tables = Tables(
        metadata,
        prefix,
        opportunity,
        visit,
        event,
        version,
        position,
        held,
        poison,
        customer,
        key_person,
        held_customer,
        *plan_tables(t),
        *tally_tables(t),
    )
    if with_indexes:
        for index in INDEXES:
            add_index(tables, index)
    return tables


def _customer_tables(t: Callable[..., sa.Table]) -> tuple[sa.Table, sa.Table, sa.Table]:
    """`bi_customer`, `bi_key_person` (SPEC §8.1) and the customer events held for a missing
    version (apart from the opportunities', see domain/customers.py)."""
    customer = t(
        "bi_customer",
        sa.Column("uscc", sa.String(18), primary_key=True),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(10), nullable=False),
        sa.Column("ownership", sa.String(10), nullable=False),
        sa.Column("industry", sa.String(100)),
        sa.Column("region", sa.String(100)),
        sa.Column("registered_capital", Money(COMPANY_FIGURE)),
        sa.Column("employees", sa.BigInteger),
        sa.Column("annual_revenue", Money(COMPANY_FIGURE)),
        sa.Column("classified_by", sa.String(100)),
        sa.Column("key_persons", sa.Integer, nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    key_person = t(
        "bi_key_person",
        sa.Column("uscc", sa.String(18), primary_key=True),
        sa.Column("person_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200)),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("stance", sa.String(20), nullable=False),
        sa.Column("reports_to", sa.String(36)),
        sa.Column("phone", sa.String(50)),
        sa.Column("email", sa.String(200)),
        sa.Column("note", sa.Text),
        sa.Column("added_through", sa.String(64)),
        sa.Column("added_at", UtcDateTime, nullable=False),
        sa.Column("changed_at", UtcDateTime),
        sa.Column("removed_at", UtcDateTime),
    )
    held = t(
        "projection_held_customer_event",
        sa.Column("event_id", sa.String(64), primary_key=True),
        # The envelope's field: the customer record's id.
        sa.Column("opportunity_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
    )
    return customer, key_person, held


def add_index(tables: Tables, index: Index, name: str | None = None) -> sa.Index:
    table = tables.by_canonical_name()[index.table]
    return sa.Index(name or index.name, *(table.c[c] for c in index.columns), unique=index.unique)


pipeline_stage = sa.Table(
    "bi_pipeline_stage",
    sa.MetaData(naming_convention=NAMING),
    sa.Column("pipeline_id", sa.String(50), primary_key=True),
    sa.Column("stage", sa.String(50), primary_key=True),
    sa.Column("stage_index", sa.Integer, nullable=False),
    sa.Column("next_stage", sa.String(50)),
    sa.Column("is_last", sa.Integer, nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("tier", sa.String(10)),
    sa.Column("label_zh", sa.String(100), nullable=False),
    sa.Column("label_en", sa.String(100), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("forecast_category", sa.String(20), nullable=False),
)

LIVE = build_tables()
