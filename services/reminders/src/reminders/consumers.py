"""The consumer of `crm.opportunity.events` (group `reminders`): each event updates the
opportunity's facts and its next due time, in one transaction with the partition's position.

Positions live in the reminders database, not in Kafka: when partitions are assigned, the
consumer seeks to the positions stored there (the beginning, for a fresh database — that is
how the timers are rebuilt from scratch). A redelivered event changes nothing: an event whose
version is not above the opportunity's is skipped. Offsets are also committed to Kafka after
each batch, for lag monitoring only. A record that is not an event is counted, logged and
passed over; so is an event whose values the store cannot hold or the schedule cannot be
computed with. The consumer never stops on either. A partition whose log is not the one its
position belongs to (contracts.logwatch) is read again from its beginning.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from contracts import topics
from contracts.consumers import ConsumedRecord, batch_subscriber, commit_batch, high_watermark_of
from contracts.envelope import Envelope
from contracts.logwatch import LogWatch, Mark, epoch_of
from contracts.store_errors import refused, why
from reminders.clock import Clock
from reminders.facts import OpportunityFacts, evolve
from reminders.metrics import Metrics
from reminders.ownership import Ownership
from reminders.store import Planned, Store
from reminders.timers import Planner

log = logging.getLogger(__name__)

RETRY_PAUSE = 1.0
TOPIC = topics.OPPORTUNITY_EVENTS


class EventIntake:
    """Applies a batch of event records to the store (runs in a worker thread)."""

    def __init__(self, store: Store, planner: Planner, clock: Clock, metrics: Metrics) -> None:
        self._store, self._planner, self._clock, self._metrics = store, planner, clock, metrics

    def restart_partition(self, partition: int) -> None:
        self._store.restart_partition(TOPIC, partition)

    def apply(self, records: Sequence[ConsumedRecord]) -> bool:
        """Make the batch durable; True when some timer is due at once. A record whose values
        fail the batch (`refused`) fails it every time: the records are then taken one per
        transaction, and that one is passed over."""
        try:
            return self._apply(records)
        except Exception as exc:
            if not refused(exc):
                raise
            log.warning("reminders: a record of the batch cannot be taken (%s)", why(exc))
        due_now = False
        for record in records:
            try:
                due_now = self._apply([record]) or due_now
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

    def _apply(self, records: Sequence[ConsumedRecord]) -> bool:
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
            else:
                read.append((envelope, record.partition))
        now = self._clock()
        with self._store.begin() as tx:
            known = tx.load(envelope.opportunity_id for envelope, _ in read)
            changed: dict[str, OpportunityFacts] = {}
            for envelope, partition in read:
                outcome = _take(known, changed, envelope, partition)
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


# What the consumer passes over, and why, for the log (the metrics count them by outcome).
_PASSED_OVER = {
    "duplicate": "a version already taken",
    "unknown_opportunity": "an event of an opportunity whose creation was never seen",
    "poison": "not an event, or a payload that cannot be taken",
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
) -> str:
    before = known.get(envelope.opportunity_id)
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
        return Envelope.model_validate(orjson.loads(record.value or b""))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        log.warning(
            "record %s/%d/%d is not an event envelope, passed over: %s",
            record.topic,
            record.partition,
            record.offset,
            str(exc).splitlines()[0],
        )
        return None


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks newly assigned partitions to the positions stored with the timers, and tells
    the scheduler which partitions are now this copy's."""

    def __init__(
        self,
        store: Store,
        ownership: Ownership,
        on_assigned: Callable[[], None],
        watch: LogWatch,
    ) -> None:
        self._store, self._ownership, self._on_assigned = store, ownership, on_assigned
        self.watch = watch
        self.consumer: Callable[[], AIOKafkaConsumer | None] = lambda: None
        self.assignments = 0

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Waits for the scheduler's round and publish in progress: the next owner starts
        # after them. A failed publish leaves its rows pending, for whoever owns them next.
        async with self._ownership.lock:
            try:
                await self._ownership.settle()
            except Exception as exc:
                log.info("reminders: publish in flight failed at a rebalance: %s", exc)
            self._ownership.drop(tp.partition for tp in revoked if tp.topic == TOPIC)
        for tp in revoked:
            self.watch.forget(tp.topic, tp.partition)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == TOPIC)
        consumer = self.consumer()
        stored = await self._positions(mine) if consumer is not None and mine else None
        if consumer is not None and stored is not None:
            for partition in mine:
                tp = TopicPartition(TOPIC, partition)
                mark = stored.get(partition)
                start = self.watch.start_at(TOPIC, partition, mark)
                if mark is not None:
                    consumer.seek(tp, start)
                else:
                    await consumer.seek_to_beginning(tp)
        self._ownership.set(mine)
        self.assignments += 1
        log.info("reminders: partitions %s of %s are this copy's", mine, TOPIC)
        self._on_assigned()

    async def _positions(self, partitions: list[int]) -> dict[int, Mark] | None:
        """The stored positions; None when the store does not answer (after a few tries the
        partitions start where the group committed: never after the stored positions, since a
        batch is committed only once stored, and an event taken twice changes nothing)."""
        for attempt in range(5):
            try:
                return await asyncio.to_thread(self._store.marks, TOPIC, partitions)
            except Exception as exc:  # the store is down: retry a little, then rely on Kafka
                log.warning("reminders: reading positions: %s", exc)
                await asyncio.sleep(0.2 * (attempt + 1))
        log.warning(
            "reminders: stored positions unreadable; partitions %s start where the group committed",
            partitions,
        )
        for partition in partitions:
            self.watch.expect(TOPIC, partition, None)
        return None


async def _restart_lost_logs(
    intake: EventIntake, watch: LogWatch, consumer: Any, records: Sequence[Any]
) -> list[Any]:
    """The records of partitions whose log is still the one their position belongs to; the
    others are read again from their beginning."""
    lost = watch.check(records, high_watermark_of(consumer))
    for loss in lost:
        await asyncio.to_thread(intake.restart_partition, loss.partition)
        watch.restart(loss)
        consumer.seek(TopicPartition(loss.topic, loss.partition), 0)
    gone = {loss.partition for loss in lost}
    return [r for r in records if r.partition not in gone]


def build_consumer(
    intake: EventIntake,
    rebalance: Rebalance,
    wake: Callable[[], None],
    group: str,
    fetch_max_wait_ms: int,
    session_timeout_ms: int,
    max_records: int = 500,
) -> KafkaRouter:
    router = KafkaRouter()
    subscriber = batch_subscriber(
        router,
        TOPIC,
        group,
        fetch_max_wait_ms=fetch_max_wait_ms,
        session_timeout_ms=session_timeout_ms,
        max_records=max_records,
        listener=rebalance,
    )
    rebalance.consumer = lambda: subscriber.consumer

    @subscriber
    async def take_events(_: list[Any], message: KafkaMessage) -> None:
        records: Sequence[Any] = message.raw_message
        if not records:
            return
        consumer: Any = message.consumer
        try:
            records = await _restart_lost_logs(intake, rebalance.watch, consumer, records)
            if not records:
                return
            due_now = await asyncio.to_thread(intake.apply, records)
        except Exception as exc:  # not durable: take the same records again after a pause
            log.warning("reminders consumer: %s; taking %d records again", exc, len(records))
            await message.nack()
            await asyncio.sleep(RETRY_PAUSE)
            return
        rebalance.watch.took(records)
        rebalance.watch.caught_up(high_watermark_of(consumer))
        if due_now:
            wake()
        try:
            await commit_batch(message, records)
        except KafkaError as exc:  # only for lag monitoring: the positions in the store count
            log.debug("reminders consumer: commit refused (%s)", exc)

    return router
