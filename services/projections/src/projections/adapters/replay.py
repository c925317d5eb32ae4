"""What the events of one slot up to an instant changed in the tallies, worked out from the
tables as the store works it out when it applies them (adapters/tally_tables.record): the
opportunities with an event in [slot, as_of] leave with their facts as of the slot's start and
join with those as of `as_of`; their creations and wins in it are credited; their visits
completed in it count; a void in it moves their visits and creation credit to `voided`.

The rows are read once per report (`read_slot`) and their facts worked out once; each tally's
changes are taken from them when a report first reads that tally (`Slot.changes`). The two
statements are compiled once per set of tables and run straight on the driver's cursor: a
report as of an instant runs them every time, and their compilation cost as much as their
execution.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from projections.adapters.schema import Tables
from projections.adapters.tally_tables import void_changes
from projections.domain import tallies as t_
from projections.domain.state import HISTORY_FIELDS, VOIDED

VOID = "OpportunityVoided"  # the event ordering.in_order names a void by

_VISIT_COLUMNS = (
    "created_at",
    "pipeline_id",
    "stage",
    "type",
    "tier",
    "ownership",
    "exit_kind",
    "dwell_seconds",
    "paused_seconds",
    "working_days",
)


@dataclass(frozen=True)
class Facts:
    """The facts of a slot's events: each touched opportunity's facts as of the slot's start
    and as of the instant (`moves`), the credits and completed visits that join (`joins`),
    and the voids (opportunity, when)."""

    moves: list[tuple[list[t_.Fact], list[t_.Fact]]]
    joins: list[t_.Fact]
    voided: list[tuple[str, datetime]]


@dataclass
class Slot:
    """The rows that say what the events of the slot starting at `start` changed up to the
    instant it was read as of: each touched opportunity's history (its last row before the
    slot, if any, then its rows of the slot) and its visits completed in the slot."""

    start: datetime
    histories: dict[str, list[Any]]
    completed: list[Any]
    _facts: Facts | None = None

    def facts(self, zone: ZoneInfo) -> Facts:
        """The facts of every tally, worked out once."""
        if self._facts is not None:
            return self._facts
        slot = self.start
        found = Facts([], [], [])
        for opportunity_id, history in self.histories.items():
            first = history[0]
            fixed = t_.Fixed(first[1].astimezone(zone).date(), *first[2:6])
            before = [] if first[6] >= slot else t_.state_facts(fixed, first[8:], zone)
            found.moves.append((before, t_.state_facts(fixed, history[-1][8:], zone)))
            for r in history:
                occurred_at, event_type, h = r[6], r[7], r[8:]
                if occurred_at < slot:
                    continue
                if event_type in t_.CREDITED:
                    found.joins.append(
                        t_.credit_fact(
                            event_type, occurred_at, h[7], h[8], h[10], h[14], zone, voided=False
                        )
                    )
                if event_type == VOID and h[0] == VOIDED:
                    found.voided.append((opportunity_id, occurred_at))
        for exit_ in self.completed:
            row = dict(zip(_VISIT_COLUMNS, exit_, strict=True))
            found.joins.append(t_.visit_fact(row, zone, voided=False))
        self._facts = found
        return found

    def changes(
        self, conn: sa.Connection, t: Tables, zone: ZoneInfo, names: Iterable[str]
    ) -> t_.Changes:
        """The changes to the tallies `names` (the others left out: a report reads a few)."""
        slot, facts = self.start, self.facts(zone)
        changes = t_.Changes(only=frozenset(names))
        for before, after in facts.moves:
            changes.move(slot, before, after)
        for fact in facts.joins:
            changes.add(slot, fact, 1)
        if facts.voided:
            void_changes(conn, t.visit, t.version, facts.voided, changes, zone)
        return changes


def read_slot(conn: sa.Connection, t: Tables, slot: datetime, as_of: datetime) -> Slot:
    """The rows of the slot starting at `slot`, as of `as_of`."""
    statements = slot_statements(conn, t)
    params = {"slot": slot, "as_of": as_of}
    histories: dict[str, list[Any]] = defaultdict(list)
    for row in _fetch(conn, statements[0], params):
        histories[row[0]].append(row)
    completed = _fetch(conn, statements[1], params) if histories else []
    return Slot(slot, dict(histories), completed)


# The compiled statements of each set of tables, by dialect.
_COMPILED: dict[tuple[str, str], tuple[Any, Any]] = {}


def slot_statements(conn: sa.Connection, t: Tables) -> tuple[Any, Any]:
    """The two statements (on PostgreSQL their SQL text, elsewhere the queries, which the
    engine's own cache compiles once)."""
    key = (t.prefix, conn.dialect.name)
    if key not in _COMPILED:
        queries = _queries(t)
        if conn.dialect.name == "postgresql":
            _COMPILED[key] = (
                str(queries[0].compile(dialect=conn.dialect)),
                str(queries[1].compile(dialect=conn.dialect)),
            )
        else:
            _COMPILED[key] = queries
    return _COMPILED[key]


def _queries(t: Tables) -> tuple[sa.Select[Any], sa.Select[Any]]:
    v, o, c = t.version.c, t.opportunity.c, t.visit.c
    slot = sa.bindparam("slot", type_=v.occurred_at.type)
    as_of = sa.bindparam("as_of", type_=v.occurred_at.type)
    touched = (
        sa.select(v.opportunity_id)
        .where(v.occurred_at >= slot, v.occurred_at <= as_of)
        .distinct()
        .subquery("touched")
    )
    # Each touched opportunity's last row before the slot and its rows of the slot.
    prior = t.version.alias("prior")
    last_before = (
        sa.select(sa.func.max(prior.c.version))
        .where(prior.c.opportunity_id == v.opportunity_id, prior.c.occurred_at < slot)
        .scalar_subquery()
    )
    histories = (
        sa.select(
            o.id,
            o.created_at,
            o.pipeline_id,
            o.type,
            o.tier,
            o.ownership,
            v.occurred_at,
            v.event_type,
            *(v[f] for f in HISTORY_FIELDS),
        )
        .select_from(
            touched.join(t.opportunity, o.id == touched.c.opportunity_id).join(
                t.version, v.opportunity_id == o.id
            )
        )
        .where(v.occurred_at <= as_of, sa.or_(v.occurred_at >= slot, v.version == last_before))
        .order_by(o.id, v.version)
    )
    completed = (
        sa.select(*(c[n] for n in _VISIT_COLUMNS))
        .join(touched, touched.c.opportunity_id == c.opportunity_id)
        .where(c.exited_at >= slot, c.exited_at <= as_of)
    )
    return histories, completed


def _fetch(conn: sa.Connection, statement: Any, params: dict[str, Any]) -> list[Any]:
    """The rows of `statement`; on PostgreSQL straight from the driver's cursor, all at once,
    whose instants, amounts and texts are what the domain reads (no per-row or per-value work)."""
    if conn.dialect.name != "postgresql":
        return list(conn.execute(statement, params))
    raw = conn.connection.driver_connection
    assert raw is not None  # noqa: S101 - an open connection has one
    with raw.cursor() as cursor:
        cursor.execute(statement, params)
        return list(cursor.fetchall())
