"""Applies a batch of events and its Kafka positions to the read model in ONE transaction.

After a crash either both are there or neither is.

Exactly once in effect: a record before the stored position of its partition is skipped; an
event whose version is already applied is a duplicate (the event id is derived from the
version, so that covers redelivered ids too). A version that skips ahead is a gap: the
opportunity keeps its last consistent state, `awaiting_version` names what it waits for, and
the later events wait in `projection_held_event` until the missing one arrives.

On PostgreSQL these transactions commit without waiting for the WAL flush (synchronous_commit
off): if the database crashes, the last batches may be lost, but their positions with them,
so the consumer reads them again and the tables stay exact. Nothing outside the database
depends on a batch being durable (the Kafka commit is informative only).

A record that decodes but holds what the tables cannot (a NUL character or a value too long
for PostgreSQL, an integer beyond 64 bits) fails its batch: the batch is applied again one
record per transaction, and that record alone is kept as poison, so its partition goes on.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from operator import itemgetter
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from chassis.kafka.logwatch import Mark, epoch_of
from chassis.sql.errors import refused, why
from contracts.rules import Rulebook
from projections.bulk import insert_new, upsert
from projections.envelopes import Event, Poison, decode
from projections.projection import (
    HISTORY_FIELDS,
    STATE_FIELDS,
    OpportunityState,
    Projector,
    state_values,
)
from projections.schema import Tables, pipeline_stage

log = logging.getLogger(__name__)

# Ids per SELECT … IN (…): far below SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


class Record(Protocol):
    """A consumed Kafka record, as aiokafka gives it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class Outcome:
    """What one batch did, for the metrics and the consumer."""

    applied: int = 0
    duplicates: int = 0
    held: int = 0
    released: int = 0
    gaps: int = 0
    not_projected: int = 0
    poison: int = 0
    already_applied: int = 0
    # Partitions whose stored position is behind the batch (the tables were rebuilt, or a
    # commit ran ahead): the consumer seeks back there (None: nothing stored, the beginning)
    # and drops the rest of the batch.
    rewind: dict[tuple[str, int], int | None] = field(default_factory=dict)
    # The positions this batch stored.
    positions: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, other: "Outcome") -> None:
        """Count `other` (the next records of the same batch) in."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rewind.update(other.rewind)
        self.positions.update(other.positions)


COUNTS = tuple(f.name for f in fields(Outcome) if f.type is int)


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
            events: list[Event] = []
            poison: list[dict[str, Any]] = []
            for record in fresh:
                decoded = decode(record.value)
                if isinstance(decoded, Poison):
                    log.warning(
                        "record %s/%d/%d is not an event: %s",
                        record.topic,
                        record.partition,
                        record.offset,
                        decoded.error,
                    )
                    poison.append(
                        {
                            "topic": record.topic,
                            "partition": record.partition,
                            "offset": record.offset,
                            "error": decoded.error,
                            "value": record.value,
                        }
                    )
                else:
                    events.append(decoded)
            outcome.poison = len(poison)
            insert_new(
                conn,
                self.tables.poison,
                POISON_COLUMNS,
                [_values(POISON_COLUMNS, p) for p in poison],
            )
            self._apply(conn, events, outcome)
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

    def apply_events(self, events: Sequence[Event]) -> Outcome:
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
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(self.tables.held)).scalar_one()
            )

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

    def _apply(self, conn: sa.Connection, events: Sequence[Event], outcome: Outcome) -> None:
        if not events:
            return
        t = self.tables
        by_opportunity: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            by_opportunity[event.opportunity_id].append(event)
        ids = list(by_opportunity)
        states = self._states(conn, ids)
        held = self._held(conn, ids)

        dirty: dict[str, OpportunityState] = {}
        visits: dict[tuple[str, int], dict[str, Any]] = {}
        event_rows: list[tuple[Any, ...]] = []
        history_rows: list[tuple[Any, ...]] = []
        hold_rows: list[dict[str, Any]] = []
        released: list[str] = []
        voided: list[dict[str, Any]] = []

        for opportunity_id, arrived in by_opportunity.items():
            state = states.get(opportunity_id)
            waiting = held.get(opportunity_id, {})
            candidates: dict[int, tuple[Event, bool]] = {v: (e, True) for v, e in waiting.items()}
            for event in arrived:
                if event.version in candidates:
                    outcome.duplicates += 1
                else:
                    candidates[event.version] = (event, False)
            expected = 1 if state is None else state.version + 1
            changed = False
            for version in sorted(candidates):
                event, was_held = candidates[version]
                if version < expected:
                    if was_held:
                        released.append(event.event_id)
                    else:
                        outcome.duplicates += 1
                    continue
                if version > expected:
                    break
                applied = self.projector.apply(state, event)
                if applied is None:
                    log.warning(
                        "event %s v%d of %s cannot start an opportunity (%s); held",
                        event.event_id,
                        version,
                        opportunity_id,
                        event.event_type,
                    )
                    break
                state = applied.state
                changed = True
                outcome.applied += 1
                if was_held:
                    released.append(event.event_id)
                    outcome.released += 1
                if not applied.projected:
                    outcome.not_projected += 1
                for row in applied.visits:
                    visits[(row["opportunity_id"], row["visit_no"])] = row
                history_rows.append(applied.history)
                if event.event_type == "OpportunityVoided" and state.status == "voided":
                    voided.append({"key": opportunity_id, "at": event.occurred_at})
                event_rows.append(_event_row(event, applied.projected))
                expected = version + 1
            waiting_now = [
                (event, was_held) for v, (event, was_held) in candidates.items() if v >= expected
            ]
            new_holds = [event for event, was_held in waiting_now if not was_held]
            if new_holds:
                outcome.held += len(new_holds)
                hold_rows.extend(
                    {
                        "event_id": e.event_id,
                        "opportunity_id": e.opportunity_id,
                        "version": e.version,
                        "envelope": e.to_json(),
                    }
                    for e in new_holds
                )
                if not waiting:
                    outcome.gaps += 1
                    log.warning(
                        "version gap for opportunity %s: applied up to v%d, got v%s; "
                        "holding its later events until v%d arrives",
                        opportunity_id,
                        expected - 1,
                        ",".join(str(e.version) for e in new_holds),
                        expected,
                    )
            if state is not None:
                awaiting = expected if waiting_now else None
                if awaiting != state.awaiting_version:
                    state.awaiting_version = awaiting
                    changed = True
                if changed:
                    dirty[opportunity_id] = state

        # Only versions above the stored state get here. Two consumers of one partition (for
        # a moment during a rebalance) queue on its position row on PostgreSQL; should they
        # still meet, the second fails on these primary keys and reads its batch again.
        insert_new(conn, t.event, EVENT_COLUMNS, event_rows, unique=True)
        insert_new(conn, t.version, HISTORY_COLUMNS, history_rows, unique=True)
        upsert(conn, t.visit, VISIT_COLUMNS, [_visit(row) for row in visits.values()])
        if voided:  # every visit of a voided opportunity says when (rare: one statement)
            conn.execute(
                sa.update(t.visit)
                .where(t.visit.c.opportunity_id == sa.bindparam("key"))
                .values(voided_at=sa.bindparam("at")),
                voided,
            )
        upsert(
            conn, t.opportunity, STATE_FIELDS, [state_values(s) for s in dirty.values()], "version"
        )
        insert_new(conn, t.held, HELD_COLUMNS, [_values(HELD_COLUMNS, h) for h in hold_rows])
        for start in range(0, len(released), CHUNK):
            conn.execute(
                sa.delete(t.held).where(t.held.c.event_id.in_(released[start : start + CHUNK]))
            )

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
                states[row["id"]] = OpportunityState.from_row(row)
        return states

    def _held(self, conn: sa.Connection, ids: list[str]) -> dict[str, dict[int, Event]]:
        """Events waiting for a missing version, of these opportunities (usually none)."""
        h = self.tables.held
        if conn.execute(sa.select(h.c.event_id).limit(1)).first() is None:
            return {}
        found: dict[str, dict[int, Event]] = defaultdict(dict)
        for start in range(0, len(ids), CHUNK):
            rows = conn.execute(
                sa.select(h.c.envelope).where(h.c.opportunity_id.in_(ids[start : start + CHUNK]))
            )
            for (text,) in rows:
                decoded = decode(text)
                if isinstance(decoded, Event):
                    found[decoded.opportunity_id][decoded.version] = decoded
        return found


EVENT_COLUMNS = (
    "event_id",
    "opportunity_id",
    "version",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "actor",
    "payload",
    "projected",
)
HISTORY_COLUMNS = ("opportunity_id", "version", "occurred_at", "event_type", *HISTORY_FIELDS)
VISIT_COLUMNS = (
    "opportunity_id",
    "visit_no",
    "pipeline_id",
    "stage",
    "stage_index",
    "entered_at",
    "entered_version",
    "entry_kind",
    "exited_at",
    "exited_version",
    "exit_kind",
    "exited_to",
    "paused_seconds",
    "deferred_seconds",
    "dwell_seconds",
    "type",
    "tier",
    "ownership",
    "created_at",
    "voided_at",
)
POSITION_COLUMNS = ("topic", "partition", "next_offset", "log_epoch")
HELD_COLUMNS = ("event_id", "opportunity_id", "version", "envelope")
POISON_COLUMNS = ("topic", "partition", "offset", "error", "value")

_visit = itemgetter(*VISIT_COLUMNS)


def _relaxed_commit(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")


def _values(columns: tuple[str, ...], row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in columns)


def _event_row(event: Event, projected: bool) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.opportunity_id,
        event.version,
        event.event_type,
        event.schema_version,
        event.occurred_at,
        event.recorded_at,
        event.actor,
        orjson.dumps(event.payload).decode(),
        projected,
    )


def write_pipeline_stages(conn: sa.Connection, rules: Rulebook) -> None:
    """`bi_pipeline_stage` as the rules file has it now (the views join it)."""
    rows = []
    for p in rules.pipelines:
        for i, stage in enumerate(p.stages):
            last = i == len(p.stages) - 1
            rows.append(
                {
                    "pipeline_id": p.id,
                    "stage": stage.id,
                    "stage_index": i,
                    "next_stage": None if last else p.stages[i + 1].id,
                    "is_last": int(last),
                    "type": p.type.value,
                    "tier": p.tier.value if p.tier else None,
                    "label_zh": stage.label.zh,
                    "label_en": stage.label.en,
                    "probability": stage.probability,
                    "forecast_category": stage.forecast_category.value,
                }
            )
    conn.execute(sa.delete(pipeline_stage))
    conn.execute(sa.insert(pipeline_stage), rows)
