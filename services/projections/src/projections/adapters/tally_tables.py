"""The tally tables (domain/tallies.py, migration 0009): each tally's sums in total
(`bi_tally_<name>`) and per day the changes occurred (`bi_tally_<name>_by_day`, led by
`event_day`); written in the store's transaction, added to, never replaced."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from chassis.sql.engines import UtcDateTime
from projections.adapters.database import insert_for
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


@dataclass(frozen=True)
class Tally:
    """One tally's two tables and the names of its key and measure columns."""

    total: sa.Table
    by_day: sa.Table
    keys: tuple[str, ...]
    measures: tuple[str, ...]


def tally_tables(t: Callable[..., sa.Table]) -> tuple[dict[str, Tally], sa.Table]:
    """Every tally's tables, and the mark of tallies a migration could not fill (one row
    while the read model awaits a rebuild; the reports read the tables themselves then)."""
    found = {}
    for name, (keys, measures) in SHAPES.items():

        def columns(day: bool, keys: Any = keys, measures: Any = measures) -> list[Any]:
            lead = [sa.Column("event_day", sa.Date(), primary_key=True)] if day else []
            return [
                *lead,
                *(sa.Column(k, kind, primary_key=True) for k, kind in keys),
                *(sa.Column(m, kind, nullable=False) for m, kind in measures),
            ]

        found[name] = Tally(
            t(f"bi_tally_{name}", *columns(False)),
            t(f"bi_tally_{name}_by_day", *columns(True)),
            tuple(k for k, _ in keys),
            tuple(m for m, _ in measures),
        )
    missing = t(
        MISSING,
        sa.Column("reason", sa.String(200), primary_key=True),
        sa.Column("since", UtcDateTime, nullable=False),
    )
    return found, missing


def table_names() -> tuple[str, ...]:
    return (
        *(f"bi_tally_{n}{s}" for n in SHAPES for s in ("", "_by_day")),
        MISSING,
    )


def write(conn: sa.Connection, tallies: dict[str, Tally], changes: Changes) -> None:
    """Add a batch's changes to the tallies, each table's rows in key order."""
    for name, tally in tallies.items():
        for table, by_day in ((tally.total, False), (tally.by_day, True)):
            rows = changes.rows(name, by_day=by_day)
            if rows:
                _add(conn, table, tally, rows, by_day)


def _add(
    conn: sa.Connection, table: sa.Table, tally: Tally, rows: list[tuple[Any, ...]], by_day: bool
) -> None:
    keys = (("event_day",) if by_day else ()) + tally.keys
    names = keys + tally.measures
    insert = insert_for(conn, table)
    statement = insert.on_conflict_do_update(
        index_elements=list(keys),
        set_={m: table.c[m] + insert.excluded[m] for m in tally.measures},
    )
    conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])


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
        day = when[completed["opportunity_id"]].astimezone(zone).date()
        changes.move(
            day,
            [t_.visit_fact(completed, zone, voided=False)],
            [t_.visit_fact(completed, zone, voided=True)],
        )
    v = version.c
    for opportunity_id, occurred_at, owner_id, team_id, currency in conn.execute(
        sa.select(v.opportunity_id, v.occurred_at, v.owner_id, v.team_id, v.currency).where(
            v.opportunity_id.in_(ids), v.version == 1, v.event_type == t_.CREATED
        )
    ):
        day = when[opportunity_id].astimezone(zone).date()
        facts = [
            t_.credit_fact(
                t_.CREATED, occurred_at, owner_id, team_id, currency, None, zone, voided=flag
            )
            for flag in (False, True)
        ]
        changes.move(day, facts[:1], facts[1:])


def record(
    conn: sa.Connection,
    tallies: dict[str, Tally],
    visit: sa.Table,
    version: sa.Table,
    before: dict[str, list[t_.Fact]],
    ordered: Ordered,
    zone: ZoneInfo,
) -> None:
    """Add what an applied batch changed to the tallies, after its visits are written."""
    changes = Changes()
    fixed = {i: t_.fixed_of(s, zone) for i, s in ordered.states.items()}
    t_.state_changes(changes, zone, before, fixed, ordered.history)
    for row in ordered.visits.values():
        if row["exited_at"] is not None:
            day = row["exited_at"].astimezone(zone).date()
            changes.add(day, t_.visit_fact(row, zone, voided=False), 1)
    if ordered.voided:
        void_changes(conn, visit, version, ordered.voided, changes, zone)
    write(conn, tallies, changes)
