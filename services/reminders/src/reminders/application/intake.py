"""Taking events into the facts: a batch of records of `crm.opportunity.events` updates each
opportunity's facts and next due time, in one transaction with the partitions' positions.

A redelivered event changes nothing: an event whose version is not above the opportunity's is
skipped. A record that is not an event is counted, logged and passed over; so is an event
whose values the store cannot hold or the schedule cannot be computed with. The events of the
other aggregates that share the topic (customer records, targets, competitions: `kind_of`) have
no timers: they are counted as `customer_record`, `target` or `competition` and go no further.
"""

import logging
from collections.abc import Sequence

from pydantic import ValidationError

from chassis.kafka.consuming import ConsumedRecord
from chassis.kafka.logwatch import epoch_of
from chassis.sql.errors import refused, why
from contracts import topics
from contracts.envelope import Envelope, NotAnEnvelope, RecordKind, kind_of, read_envelope
from reminders.application.ports import Planned, TimerStore
from reminders.domain.clock import Clock
from reminders.domain.facts import OpportunityFacts, evolve
from reminders.domain.timers import Planner
from reminders.metrics import Metrics

log = logging.getLogger(__name__)

TOPIC = topics.OPPORTUNITY_EVENTS


class EventIntake:
    """Applies a batch of event records to the store (runs in a worker thread)."""

    def __init__(self, store: TimerStore, planner: Planner, clock: Clock, metrics: Metrics) -> None:
        self._store, self._planner, self._clock, self._metrics = store, planner, clock, metrics

    def restart_partition(self, partition: int) -> None:
        self._store.restart_partition(TOPIC, partition)

    def apply(
        self, records: Sequence[ConsumedRecord], rereading: frozenset[int] = frozenset()
    ) -> bool:
        """Make the batch durable; True when some timer is due at once. A record whose values
        fail the batch (`refused`) fails it every time: the records are then taken one per
        transaction, and that one is passed over. On the partitions `rereading` after a lost
        log, an event after a version not taken yet waits for the history to bring it."""
        try:
            return self._apply(records, rereading)
        except Exception as exc:
            if not refused(exc):
                raise
            log.warning("reminders: a record of the batch cannot be taken (%s)", why(exc))
        due_now = False
        for record in records:
            try:
                due_now = self._apply([record], rereading) or due_now
            except Exception as exc:
                if not refused(exc):
                    raise
                self._pass_over(record, exc)
        return due_now

    def _pass_over(self, record: ConsumedRecord, error: Exception) -> None:
        log.warning(
            "record %s/%d/%d cannot be taken, passed over: %s",
            record.topic,
            record.partition,
            record.offset,
            why(error),
        )
        with self._store.begin() as tx:
            tx.advance(TOPIC, {record.partition: record.offset + 1}, _epochs([record]))
        self._metrics.events.labels("poison").inc()

    def _apply(self, records: Sequence[ConsumedRecord], rereading: frozenset[int]) -> bool:
        read: list[tuple[Envelope, int]] = []
        next_offsets: dict[int, int] = {}
        outcomes: dict[str, int] = {}
        for record in records:
            if record.topic != TOPIC:
                continue
            next_offsets[record.partition] = max(
                next_offsets.get(record.partition, 0), record.offset + 1
            )
            envelope = _envelope(record)
            if envelope is None:
                outcomes["poison"] = outcomes.get("poison", 0) + 1
            elif (kind := kind_of(envelope.event_type)) is not RecordKind.OPPORTUNITY:
                outcome = _OTHER_AGGREGATES[kind]
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            else:
                read.append((envelope, record.partition))
        now = self._clock()
        with self._store.begin() as tx:
            known = tx.load(envelope.opportunity_id for envelope, _ in read)
            changed: dict[str, OpportunityFacts] = {}
            for envelope, partition in read:
                outcome = _take(known, changed, envelope, partition, partition in rereading)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            planned = [Planned(f, self._planner.first_look(f, now)) for f in changed.values()]
            tx.save(planned)
            tx.advance(TOPIC, next_offsets, _epochs(records))
        for outcome, count in outcomes.items():
            self._metrics.events.labels(outcome).inc(count)
        _say_what_was_passed_over(outcomes)
        return any(p.next_due_at is not None and p.next_due_at <= now for p in planned)


def _epochs(records: Sequence[ConsumedRecord]) -> dict[int, str | None]:
    """The log epoch of each partition's last record that names one."""
    found: dict[int, str | None] = {}
    for record in records:
        found[record.partition] = epoch_of(record) or found.get(record.partition)
    return found


# The outcome each other aggregate's events on the topic are counted as.
_OTHER_AGGREGATES = {
    RecordKind.CUSTOMER: "customer_record",
    RecordKind.TARGET: "target",
    RecordKind.COMPETITION: "competition",
}

# What the consumer passes over, and why, for the log (the metrics count them by outcome).
_PASSED_OVER = {
    "duplicate": "a version already taken",
    "gap": "a version after one not taken yet",
    "unknown_opportunity": "an event of an opportunity whose creation was never seen",
    "poison": "not an event, or a payload that cannot be taken",
    "customer_record": "an event of a customer record, which has no timers",
    "target": "an event of a target, which has no timers",
    "competition": "an event of a competition, which has no timers",
}


def _say_what_was_passed_over(outcomes: dict[str, int]) -> None:
    passed = {name: outcomes[name] for name in _PASSED_OVER if outcomes.get(name)}
    if passed:
        log.info(
            "reminders: passed over %d records (%s)",
            sum(passed.values()),
            ", ".join(f"{count} {name}: {_PASSED_OVER[name]}" for name, count in passed.items()),
        )


def _take(
    known: dict[str, OpportunityFacts],
    changed: dict[str, OpportunityFacts],
    envelope: Envelope,
    partition: int,
    rereading: bool = False,
) -> str:
    before = known.get(envelope.opportunity_id)
    if rereading and before is not None and envelope.version > before.version + 1:
        # An earlier version has not come yet: the head of a new log can hold events the
        # relay sent before it found the broker had lost the old one; the history it
        # publishes again brings every version, in order. (Elsewhere a version after one
        # whose payload could not be read goes on, as it always did.)
        log.warning(
            "event %s of %s is v%d, the facts are at v%d: passed over until the versions "
            "between have come",
            envelope.event_id,
            envelope.opportunity_id,
            envelope.version,
            before.version,
        )
        return "gap"
    try:
        after = evolve(before, envelope, partition)
    except ValidationError as exc:
        log.warning(
            "event %s (%s v%d) has a malformed payload, passed over: %s",
            envelope.event_id,
            envelope.event_type,
            envelope.version,
            exc.errors()[0]["msg"],
        )
        return "poison"
    if after is None:
        return "unknown_opportunity"
    if after is before:
        return "duplicate"
    known[envelope.opportunity_id] = changed[envelope.opportunity_id] = after
    return "applied"


def _envelope(record: ConsumedRecord) -> Envelope | None:
    try:
        return read_envelope(record.value)
    except NotAnEnvelope as exc:
        log.warning(
            "record %s/%d/%d is not an event envelope, passed over: %s",
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
        return None
