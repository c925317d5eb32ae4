"""Applies a batch of events and its Kafka positions to the read model in ONE transaction.

After a crash either both are there or neither is.

Exactly once in effect: a record before the stored position of its partition is skipped; the
events are applied in version order per opportunity (domain/ordering.py), and those held for
a missing version wait in `projection_held_event` until it arrives. A customer record's events
go to its own projection (adapters/customers.py), in order per record the same way; one whose
payload the contract refuses is kept as poison, like a record that is no envelope.

On PostgreSQL these transactions commit without waiting for the WAL flush (synchronous_commit
off): if the database crashes, the last batches may be lost, but their positions with them,
so the consumer reads them again and the tables stay exact. Nothing outside the database
depends on a batch being durable (the Kafka commit is informative only).

A record that is no envelope (`contracts.envelope.read_envelope`) is kept as poison. One that
is but holds what the tables cannot (a NUL character or a value too long
for PostgreSQL, an integer beyond 64 bits) fails its batch: the batch is applied again one
record per transaction, and that record alone is kept as poison, so its partition goes on.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from chassis.kafka.logwatch import Mark, epoch_of
from chassis.sql.errors import refused, why
from contracts.envelope import Envelope, NotAnEnvelope, RecordKind, kind_of, read_envelope
from projections.adapters import tally_tables as tallies
from projections.adapters.bulk import insert_new, upsert
from projections.adapters.customers import apply_customer_events
from projections.adapters.deferrals import write_deferrals
from projections.adapters.held import CHUNK, held_count, held_events, hold, let_go
from projections.adapters.plans import apply_plan_events
from projections.adapters.rows import (
    EVENT_COLUMNS,
    HISTORY_COLUMNS,
    POISON_COLUMNS,
    POSITION_COLUMNS,
    VISIT_COLUMNS,
    event_row,
    values_of,
    visit_values,
)
from projections.adapters.schema import Tables
from projections.domain.ordering import Counts, in_order
from projections.domain.projection import Projector
from projections.domain.state import STATE_FIELDS, OpportunityState, state_values
from projections.domain.tallies import facts_before

log = logging.getLogger(__name__)

# The aggregates whose events stand alone (adapters/plans.py).
_PLANS = (RecordKind.TARGET, RecordKind.COMPETITION)


class Record(Protocol):
    """A consumed Kafka record, as aiokafka gives it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class Outcome(Counts):
    """What one batch did, for the metrics and the consumer."""

    poison: int = 0
    already_applied: int = 0
    # Partitions whose stored position is behind the batch (the tables were rebuilt, or a
    # commit ran ahead): the consumer seeks back there (None: nothing stored, the beginning)
    # and drops the rest of the batch.
    rewind: dict[tuple[str, int], int | None] = field(default_factory=dict)
    # The positions this batch stored.
    positions: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        """Count `other` (the next records of the same batch, or its ordering) in."""
        super().add(other)
        if isinstance(other, Outcome):
            self.rewind.update(other.rewind)
            self.positions.update(other.positions)


class Store:
    def __init__(self, engine: sa.Engine, tables: Tables, projector: Projector) -> None:
        self.engine, self.tables, self.projector = engine, tables, projector

    # -- positions -------------------------------------------------------------------------

    def positions(self, topic: str) -> dict[int, int]:
        """The next offset to read per partition: the truth the consumer seeks to."""
        p = self.tables.position
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(p.c.partition, p.c.next_offset).where(p.c.topic == topic)
            ).all()
        return {int(partition): int(offset) for partition, offset in rows}

    def marks(self, topic: str) -> dict[int, Mark]:
        """The stored positions with the log epoch each belongs to."""
        p = self.tables.position
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(p.c.partition, p.c.next_offset, p.c.log_epoch).where(p.c.topic == topic)
            ).all()
        return {int(row[0]): Mark(int(row[1]), row[2]) for row in rows}

    def restart_partition(self, topic: str, partition: int) -> None:
        """The partition's log was lost: read it again from its beginning (what was applied
        stays; events are taken once by their identity)."""
        with self.engine.begin() as conn:
            upsert(conn, self.tables.position, POSITION_COLUMNS, [(topic, partition, 0, None)])

    # -- applying --------------------------------------------------------------------------

    def apply_records(
        self, records: Sequence[Record], known: dict[tuple[str, int], int] | None = None
    ) -> Outcome:
        """Apply consumed records and store how far each partition got, in one transaction;
        if a record's content fails it (`refused`), one transaction per record instead.

        `known` is where the caller believes each partition's stored position is (what it
        sought to or last stored). A stored position that differs from it and lies before
        the batch means the tables changed under the consumer (a rebuild switched them in):
        that partition's records are dropped and `rewind` says where to read again.
        """
        try:
            return self._apply_records(records, known or {})
        except Exception as exc:
            if not refused(exc):
                raise
            log.warning("a record of the batch cannot be stored (%s); one at a time", why(exc))
        total = Outcome()
        known = dict(known or {})
        for record in records:
            if (record.topic, record.partition) in total.rewind:
                continue
            try:
                outcome = self._apply_records([record], known)
            except Exception as exc:
                if not refused(exc):
                    raise
                outcome = self._set_aside(record, exc)
            total.add(outcome)
            known.update(outcome.positions)
        return total

    def _apply_records(
        self, records: Sequence[Record], known: dict[tuple[str, int], int]
    ) -> Outcome:
        outcome = Outcome()
        with self.engine.begin() as conn:
            _relaxed_commit(conn)
            stored = self._stored_positions(conn, {(r.topic, r.partition) for r in records})
            fresh: list[Record] = []
            first: set[tuple[str, int]] = set()
            for record in records:
                key = (record.topic, record.partition)
                if key in outcome.rewind:
                    continue
                position = stored.get(key)
                if key not in first:
                    first.add(key)
                    if position != known.get(key, position) and (
                        position is None or record.offset > position
                    ):
                        outcome.rewind[key] = position
                        continue
                if position is not None and record.offset < position:
                    outcome.already_applied += 1
                    continue
                fresh.append(record)
                stored[key] = record.offset + 1
            events: list[Envelope] = []
            # The records of the customer events, to keep one as poison if the contract refuses it.
            origins: dict[str, Record] = {}
            poison: list[dict[str, Any]] = []
            for record in fresh:
                try:
                    event = read_envelope(record.value)
                except NotAnEnvelope as exc:
                    log.warning(
                        "record %s/%d/%d is not an event: %s",
                        record.topic,
                        record.partition,
                        record.offset,
                        exc,
                    )
                    poison.append(
                        {
                            "topic": record.topic,
                            "partition": record.partition,
                            "offset": record.offset,
                            "error": str(exc),
                            "value": record.value,
                        }
                    )
                    continue
                events.append(event)
                if kind_of(event.event_type) is RecordKind.CUSTOMER:
                    origins.setdefault(event.event_id, record)
            outcome.poison = len(poison)
            insert_new(
                conn,
                self.tables.poison,
                POISON_COLUMNS,
                [values_of(POISON_COLUMNS, p) for p in poison],
            )
            self._apply(conn, events, outcome, origins)
            epochs: dict[tuple[str, int], str | None] = {}
            for record in fresh:
                key = (record.topic, record.partition)
                outcome.positions[key] = max(outcome.positions.get(key, 0), record.offset + 1)
                epochs[key] = epoch_of(record) or epochs.get(key)
            upsert(
                conn,
                self.tables.position,
                POSITION_COLUMNS,
                [
                    (t, p, offset, epochs[(t, p)])
                    for (t, p), offset in sorted(outcome.positions.items())
                ],
            )
        return outcome

    def _set_aside(self, record: Record, error: Exception) -> Outcome:
        """Keep a record the tables cannot hold as poison, and store the position after it."""
        problem = f"not storable: {why(error)}"
        log.warning(
            "record %s/%d/%d is kept as poison: %s",
            record.topic,
            record.partition,
            record.offset,
            problem,
        )
        key = (record.topic, record.partition)
        with self.engine.begin() as conn:
            _relaxed_commit(conn)
            insert_new(
                conn,
                self.tables.poison,
                POISON_COLUMNS,
                [(record.topic, record.partition, record.offset, problem, record.value)],
            )
            upsert(
                conn,
                self.tables.position,
                POSITION_COLUMNS,
                [(record.topic, record.partition, record.offset + 1, epoch_of(record))],
            )
        return Outcome(poison=1, positions={key: record.offset + 1})

    def apply_events(self, events: Sequence[Envelope]) -> Outcome:
        """Apply events that come with no Kafka position (a rebuild from the feed)."""
        outcome = Outcome()
        with self.engine.begin() as conn:
            _relaxed_commit(conn)
            self._apply(conn, events, outcome)
        return outcome

    def set_positions(self, conn: sa.Connection, topic: str, positions: dict[int, int]) -> None:
        upsert(
            conn,
            self.tables.position,
            POSITION_COLUMNS,
            [(topic, partition, offset, None) for partition, offset in sorted(positions.items())],
        )

    def held_count(self) -> int:
        """Events waiting for a missing version, of opportunities and of customer records."""
        with self.engine.connect() as conn:
            return held_count(conn, self.tables.held) + held_count(conn, self.tables.held_customer)

    # -- inside the transaction ------------------------------------------------------------

    def _stored_positions(
        self, conn: sa.Connection, keys: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        p = self.tables.position
        found: dict[tuple[str, int], int] = {}
        by_topic: dict[str, list[int]] = defaultdict(list)
        for topic, partition in keys:
            by_topic[topic].append(partition)
        for topic, partitions in by_topic.items():
            query = sa.select(p.c.partition, p.c.next_offset).where(
                p.c.topic == topic, p.c.partition.in_(partitions)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            for partition, offset in conn.execute(query):
                found[(topic, int(partition))] = int(offset)
        return found

    def _apply(
        self,
        conn: sa.Connection,
        events: Sequence[Envelope],
        outcome: Outcome,
        origins: Mapping[str, Record] | None = None,
    ) -> None:
        kinds = [kind_of(event.event_type) for event in events]
        customers = [e for e, k in zip(events, kinds, strict=True) if k is RecordKind.CUSTOMER]
        if customers:
            self._apply_customers(conn, customers, outcome, origins or {})
        plans = [e for e, k in zip(events, kinds, strict=True) if k in _PLANS]
        if plans:
            outcome.add(apply_plan_events(conn, self.tables, plans))
        events = [e for e, k in zip(events, kinds, strict=True) if k is RecordKind.OPPORTUNITY]
        if not events:
            return
        t = self.tables
        ids = list(dict.fromkeys(event.opportunity_id for event in events))
        held = held_events(conn, t.held, ids)
        stored = self._states(conn, ids)
        zone = self.projector.zone
        before = {i: facts_before(state, zone) for i, state in stored.items()}
        ordered = in_order(self.projector, stored, held, events)
        outcome.add(ordered)
        # Only versions above the stored state get here. Two consumers of one partition (for
        # a moment during a rebalance) queue on its position row on PostgreSQL; should they
        # still meet, the second fails on these primary keys and reads its batch again.
        event_rows = [event_row(event, projected) for event, projected in ordered.events]
        insert_new(conn, t.event, EVENT_COLUMNS, event_rows, unique=True)
        insert_new(conn, t.version, HISTORY_COLUMNS, ordered.history, unique=True)
        upsert(conn, t.visit, VISIT_COLUMNS, [visit_values(row) for row in ordered.visits.values()])
        if ordered.voided:  # every visit of a voided opportunity says when (rare: one statement)
            conn.execute(
                sa.update(t.visit)
                .where(t.visit.c.opportunity_id == sa.bindparam("key"))
                .values(voided_at=sa.bindparam("at")),
                [{"key": key, "at": at} for key, at in ordered.voided],
            )
        states = [state_values(s) for s in ordered.states.values()]
        upsert(conn, t.opportunity, STATE_FIELDS, states, "version")
        hold(conn, t.held, ordered.holds)
        let_go(conn, t.held, ordered.released_ids)
        write_deferrals(conn, t.deferral, ordered.deferrals, ordered.deferral_ends)
        tallies.record(conn, t.tallies, t.visit, t.version, before, ordered, zone)

    def _apply_customers(
        self,
        conn: sa.Connection,
        events: Sequence[Envelope],
        outcome: Outcome,
        origins: Mapping[str, Record],
    ) -> None:
        """Customer record events to their tables; the records of those the contract refuses
        kept as poison. Without a record (a rebuild from the feed; an event held for a missing
        version, its record taken in an earlier batch) one is logged and counted only."""
        changes = apply_customer_events(conn, self.tables, events)
        outcome.add(changes)
        poison = [
            (record.topic, record.partition, record.offset, why, record.value)
            for event, why in changes.refused
            if (record := origins.get(event.event_id)) is not None
        ]
        insert_new(conn, self.tables.poison, POISON_COLUMNS, poison)

    def _states(self, conn: sa.Connection, ids: list[str]) -> dict[str, OpportunityState]:
        o = self.tables.opportunity
        states: dict[str, OpportunityState] = {}
        if conn.dialect.name == "postgresql":
            # One round trip; the driver gives aware datetimes and Decimals as they are. No
            # row locks: an opportunity's events come from one partition, and the position
            # row of the partition is locked for the whole transaction.
            raw = conn.connection.driver_connection
            assert raw is not None  # noqa: S101 - an open connection has one
            names = ", ".join(f'"{name}"' for name in STATE_FIELDS)
            with raw.cursor() as cursor:
                cursor.execute(
                    f'SELECT {names} FROM "{o.name}" WHERE id = ANY(%s)',  # noqa: S608 - our names
                    (ids,),
                )
                for row in cursor:
                    states[row[0]] = OpportunityState(*row)
            return states
        for start in range(0, len(ids), CHUNK):
            rows = conn.execute(sa.select(o).where(o.c.id.in_(ids[start : start + CHUNK])))
            for row in rows.mappings():
                states[row["id"]] = OpportunityState(**{name: row[name] for name in STATE_FIELDS})
        return states


def _relaxed_commit(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
