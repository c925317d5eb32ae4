"""The tally tables (domain/tallies.py, migration 0009): each tally's sums in total
(`bi_tally_<name>`), per day, hour and five-minute slot the changes occurred
(`bi_tally_<name>_by_day`, `_by_hour`, `_by_slot`, led by `event_day`, `event_hour`,
`event_slot`); written in the store's transaction, added to, never replaced."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from chassis.sql.engines import UtcDateTime
from projections.adapters.bulk import add_up
from projections.domain import tallies as t_
from projections.domain.ordering import Ordered
from projections.domain.tallies import Changes

# Sums of microseconds since 1970 outgrow 64 bits on PostgreSQL's side; SQLite keeps 64.
BigSum = sa.BigInteger().with_variant(sa.Numeric(38, 0), "postgresql")


def _text(name: str, length: int) -> tuple[str, Any]:
    return name, sa.String(length)


_SEGMENT = (
    ("created_day", sa.Date()),
    _text("pipeline_id", 50),
    _text("type", 20),
    _text("tier", 10),
    _text("ownership", 10),
)
# name → (key columns, measure columns), in the order domain/tallies.py gives them.
SHAPES: dict[str, tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]]] = {
    t_.COHORT: (
        (
            *_SEGMENT,
            _text("status", 20),
            ("furthest_stage_index", sa.Integer()),
            _text("stage", 50),
            _text("currency", 3),
        ),
        (
            ("opportunities", sa.BigInteger()),
            ("amount_cents", sa.BigInteger()),
            ("entered_us", BigSum),
            ("paused_us", BigSum),
            ("paused", sa.BigInteger()),
            ("paused_at_us", BigSum),
        ),
    ),
    t_.FORECAST: (
        (
            *_SEGMENT,
            _text("stage", 50),
            _text("close_month", 7),
            _text("currency", 3),
            _text("category_override", 20),
        ),
        (
            ("opportunities", sa.BigInteger()),
            ("amount_cents", sa.BigInteger()),
            ("without_amount", sa.BigInteger()),
        ),
    ),
    t_.OWNED: (
        (
            _text("close_month", 7),
            _text("pipeline_id", 50),
            _text("stage", 50),
            _text("owner_id", 100),
            _text("team_id", 100),
            _text("currency", 3),
        ),
        (("opportunities", sa.BigInteger()), ("amount_cents", sa.BigInteger())),
    ),
    t_.WINS: (
        (*_SEGMENT, _text("won_month", 7), _text("currency", 3)),
        (("opportunities", sa.BigInteger()), ("amount_cents", sa.BigInteger())),
    ),
    t_.VISITS: (
        (
            ("created_day", sa.Date()),
            _text("pipeline_id", 50),
            _text("stage", 50),
            _text("type", 20),
            _text("tier", 10),
            _text("ownership", 10),
            _text("exit_kind", 10),
            ("voided", sa.Boolean()),
        ),
        (
            ("visits", sa.BigInteger()),
            ("dwell_us", BigSum),
            ("paused_us", BigSum),
            ("counted", sa.BigInteger()),
            ("working_us", BigSum),
        ),
    ),
    t_.CREDITS: (
        (
            ("credit_day", sa.Date()),
            _text("event_type", 100),
            _text("owner_id", 100),
            _text("team_id", 100),
            _text("currency", 3),
            ("voided", sa.Boolean()),
        ),
        (("events", sa.BigInteger()), ("amount_cents", sa.BigInteger())),
    ),
}
MISSING = "projection_tallies_missing"
# Each tally's columns of the total table, keys then measures (as Changes.rows gives them).
SHAPE_COLUMNS = {
    name: tuple(c for c, _ in keys) + tuple(m for m, _ in measures)
    for name, (keys, measures) in SHAPES.items()
}


@dataclass(frozen=True)
class Tally:
    """One tally's three tables and the names of its key and measure columns."""

    total: sa.Table
    by_day: sa.Table
    by_hour: sa.Table
    by_slot: sa.Table
    keys: tuple[str, ...]
    measures: tuple[str, ...]


# The column that leads each table's key after the total's: none, the day, the hour, the slot.
LEADS: tuple[tuple[str, str | None, Any], ...] = (
    ("", None, None),
    ("_by_day", "event_day", sa.Date()),
    ("_by_hour", "event_hour", UtcDateTime()),
    ("_by_slot", "event_slot", UtcDateTime()),
)


def tally_tables(t: Callable[..., sa.Table]) -> tuple[dict[str, Tally], sa.Table]:
    """Every tally's tables, and the mark of tallies a migration could not fill (one row
    while the read model awaits a rebuild; the reports read the tables themselves then)."""
    found = {}
    for name, (keys, measures) in SHAPES.items():
        tables = []
        for suffix, lead, lead_type in LEADS:
            first = [] if lead is None else [sa.Column(lead, lead_type, primary_key=True)]
            tables.append(
                t(
                    f"bi_tally_{name}{suffix}",
                    *first,
                    *(sa.Column(k, kind, primary_key=True) for k, kind in keys),
                    *(sa.Column(m, kind, nullable=False) for m, kind in measures),
                )
            )
        total, by_day, by_hour, by_slot = tables
        found[name] = Tally(
            total,
            by_day,
            by_hour,
            by_slot,
            tuple(k for k, _ in keys),
            tuple(m for m, _ in measures),
        )
    missing = t(
        MISSING,
        sa.Column("reason", sa.String(200), primary_key=True),
        sa.Column("since", UtcDateTime, nullable=False),
    )
    return found, missing


def missing_reason(engine: sa.Engine) -> str | None:
    """Why the tallies are not there (the reports read the tables alone meanwhile), or None."""
    marks = sa.table(MISSING, sa.column("reason"))
    with engine.connect() as conn:
        reason: str | None = conn.execute(sa.select(marks.c.reason).limit(1)).scalar()
    return reason


def table_names() -> tuple[str, ...]:
    return (
        *(f"bi_tally_{n}{suffix}" for n in SHAPES for suffix, _, _ in LEADS),
        MISSING,
    )


def write(conn: sa.Connection, tallies: dict[str, Tally], changes: Changes) -> None:
    """Add a batch's changes to the tallies, each table's rows in key order."""
    for name, levels in sorted(changes.rows().items()):
        tally = tallies[name]
        tables = (tally.total, tally.by_day, tally.by_hour, tally.by_slot)
        written = zip(tables, levels, LEADS, strict=True)
        for table, rows, (_, lead, _) in written:
            if rows:
                _add(conn, table, tally, rows, lead)


def _add(
    conn: sa.Connection,
    table: sa.Table,
    tally: Tally,
    rows: list[tuple[Any, ...]],
    lead: str | None,
) -> None:
    keys = (() if lead is None else (lead,)) + tally.keys
    add_up(conn, table, keys + tally.measures, rows, tally.measures)


def void_changes(
    conn: sa.Connection,
    visit: sa.Table,
    version: sa.Table,
    voided: Iterable[tuple[str, datetime]],
    changes: Changes,
    zone: ZoneInfo,
) -> None:
    """Opportunities voided: their completed visits and their creation's credit leave the
    figures (move to `voided`) on the day of the void. Rare: two small queries."""
    when = dict(voided)
    ids = list(when)
    for row in conn.execute(
        sa.select(visit).where(visit.c.opportunity_id.in_(ids), visit.c.exited_at.is_not(None))
    ).mappings():
        completed = dict(row)
        slot = t_.slot_of(when[completed["opportunity_id"]], zone)
        changes.move(
            slot,
            [t_.visit_fact(completed, zone, voided=False)],
            [t_.visit_fact(completed, zone, voided=True)],
        )
    v = version.c
    for opportunity_id, occurred_at, owner_id, team_id, currency in conn.execute(
        sa.select(v.opportunity_id, v.occurred_at, v.owner_id, v.team_id, v.currency).where(
            v.opportunity_id.in_(ids), v.version == 1, v.event_type == t_.CREATED
        )
    ):
        slot = t_.slot_of(when[opportunity_id], zone)
        facts = [
            t_.credit_fact(
                t_.CREATED, occurred_at, owner_id, team_id, currency, None, zone, voided=flag
            )
            for flag in (False, True)
        ]
        changes.move(slot, facts[:1], facts[1:])


def record(
    conn: sa.Connection,
    tallies: dict[str, Tally],
    visit: sa.Table,
    version: sa.Table,
    before: dict[str, t_.Before],
    ordered: Ordered,
    zone: ZoneInfo,
) -> None:
    """Add what an applied batch changed to the tallies, after its visits are written."""
    changes = Changes()
    fixed = {i: t_.fixed_of(s, zone) for i, s in ordered.states.items()}
    t_.state_changes(changes, zone, before, fixed, ordered.history)
    for row in ordered.visits.values():
        if row["exited_at"] is not None:
            slot = t_.slot_of(row["exited_at"], zone)
            changes.add(slot, t_.visit_fact(row, zone, voided=False), 1)
    if ordered.voided:
        void_changes(conn, visit, version, ordered.voided, changes, zone)
    write(conn, tallies, changes)
