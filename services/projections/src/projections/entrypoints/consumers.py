"""The projections' Kafka consumer (group `projections`): a FastStream router.

Positions are the truth: each batch is applied together with the positions it reaches, in one
database transaction (adapters/store.py); on every partition assignment the consumer seeks to the
stored positions (`PositionSeeker`), so what the group committed in Kafka is only
informative (it is still committed, for lag dashboards). A batch that fails is read again
from its first records after a pause; a poison record is kept in the database, never retried.
A partition whose log is not the one its position belongs to (chassis.kafka.logwatch) is read
again from its beginning.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import Tracer

from chassis.kafka.consuming import (
    StrandedCheck,
    batch_subscriber,
    high_watermark_of,
    restart_lost_logs,
)
from chassis.kafka.logwatch import LogWatch, Mark
from chassis.kafka.traces import consuming
from projections.adapters.store import Outcome, Store
from projections.entrypoints.instruments import Instruments

log = logging.getLogger(__name__)

RETRY_PAUSE = 1.0

Key = tuple[str, int]


class PositionSeeker(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, seek every partition to the position stored with the read model (to
    the beginning when none is stored)."""

    def __init__(
        self,
        store: Store,
        topic: str,
        consumer: Callable[[], AIOKafkaConsumer | None],
        watch: LogWatch,
    ) -> None:
        self.store, self.topic, self._consumer, self.watch = store, topic, consumer, watch
        # Where this consumer believes each assigned partition's stored position is.
        self.known: dict[Key, int] = {}
        self.assigned: set[TopicPartition] = set()
        self.joined = asyncio.Event()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.known.pop((tp.topic, tp.partition), None)
            self.watch.forget(tp.topic, tp.partition)
        self.assigned -= set(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer()
        try:
            marks = await asyncio.to_thread(self.store.marks, self.topic)
        except Exception as exc:  # database down: the first batch of each partition checks
            log.warning("projections: stored positions unreadable (%s); checking per batch", exc)
            for tp in assigned:
                # Differs from any stored position: the first batch rewinds to it if needed.
                self.known[(tp.topic, tp.partition)] = -1
                self.watch.expect(tp.topic, tp.partition, None)
            self.assigned = set(assigned)
            self.joined.set()
            return
        for tp in assigned:
            mark = marks.get(tp.partition)
            start = self.watch.start_at(tp.topic, tp.partition, mark)
            if consumer is not None:
                # Offset 0 below the log start resets to the earliest (auto_offset_reset).
                consumer.seek(tp, start)
            if mark is None:
                self.known.pop((tp.topic, tp.partition), None)
            else:
                self.known[(tp.topic, tp.partition)] = mark.next_offset
        self.assigned = set(assigned)
        log.info(
            "projections: assigned %s, from stored positions %s",
            sorted(tp.partition for tp in assigned),
            {
                p: m.next_offset
                for p, m in sorted(marks.items())
                if TopicPartition(self.topic, p) in assigned
            },
        )
        self.joined.set()


def build_consumer(
    store: Store,
    metrics: Instruments,
    topic: str,
    group: str,
    *,
    fetch_max_wait_ms: int,
    session_timeout_ms: int,
    max_records: int,
    on_stored: Callable[[], None] | None = None,
    tracer: Tracer | None = None,
) -> tuple[KafkaRouter, PositionSeeker, Callable[[], Coroutine[Any, Any, None]]]:
    """The consumer of the events topic, the seeker of its stored positions, and the check of
    partitions stranded past the end of a new log (to run beside the broker). With a tracer,
    each record's apply is a span (chassis.kafka.traces)."""
    router = KafkaRouter()
    holder: dict[str, Any] = {}
    watch = LogWatch("projections", metrics.log)
    seeker = PositionSeeker(store, topic, lambda: holder["subscriber"].consumer, watch)
    subscriber = batch_subscriber(
        router,
        topic,
        group,
        fetch_max_wait_ms=fetch_max_wait_ms,
        session_timeout_ms=session_timeout_ms,
        max_records=max_records,
        listener=seeker,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    holder["subscriber"] = subscriber
    stranded = StrandedCheck(lambda consumer: _restart_lost_logs(store, seeker, consumer, []))

    @subscriber
    async def take(_: list[Any], message: KafkaMessage) -> None:
        records: list[Any] = message.raw_message  # type: ignore[assignment]
        async with stranded.lock:
            await apply_batch(store, seeker, metrics, message.consumer, records, on_stored, tracer)

    return router, seeker, lambda: stranded.run(subscriber)


async def apply_batch(
    store: Store,
    seeker: PositionSeeker,
    metrics: Instruments,
    consumer: Any,
    records: list[Any],
    on_stored: Callable[[], None] | None = None,
    tracer: Tracer | None = None,
) -> None:
    """Apply one batch; then seek where the store says to read again, and commit (to Kafka,
    for information) the positions it stored. `on_stored` runs once the batch is durable."""
    started = time.perf_counter()
    try:
        records = await _restart_lost_logs(store, seeker, consumer, records)
        if not records:
            return
        with consuming(tracer, "projections apply", records):
            outcome = await asyncio.to_thread(store.apply_records, records, dict(seeker.known))
    except Exception as exc:  # not applied: read the same records again after a pause
        log.warning("projections: %s; reading %d records again", exc, len(records))
        firsts: dict[Key, int] = {}
        for record in records:
            key = (record.topic, record.partition)
            firsts[key] = min(firsts.get(key, record.offset), record.offset)
        for (topic, partition), first in firsts.items():
            consumer.seek(TopicPartition(topic, partition), first)
        await asyncio.sleep(RETRY_PAUSE)
        return
    if on_stored is not None:
        on_stored()
    metrics.batch_seconds.observe(time.perf_counter() - started)
    metrics.batch_size.observe(len(records))
    metrics.count(outcome)
    _say_what_was_passed_over(outcome)
    if outcome.held or outcome.released:
        metrics.held.set(await asyncio.to_thread(store.held_count))
    seeker.known.update(outcome.positions)
    seeker.watch.took(r for r in records if (r.topic, r.partition) not in outcome.rewind)
    for (topic, partition), stored in outcome.rewind.items():
        log.warning(
            "projections: partition %s/%d has stored position %s behind this consumer; "
            "reading again from there",
            topic,
            partition,
            "(none: the beginning)" if stored is None else stored,
        )
        # Offset 0 below the log start resets to the earliest (auto_offset_reset).
        consumer.seek(TopicPartition(topic, partition), stored or 0)
        seeker.watch.expect(topic, partition, Mark(stored or 0))
        if stored is None:
            seeker.known.pop((topic, partition), None)
        else:
            seeker.known[(topic, partition)] = stored
    seeker.watch.caught_up(high_watermark_of(consumer))
    _observe_lag(metrics, seeker, consumer)
    if outcome.positions:
        try:
            await consumer.commit(
                {TopicPartition(t, p): offset for (t, p), offset in outcome.positions.items()}
            )
        except KafkaError as exc:  # informative only: the stored positions are the truth
            log.info("projections: commit refused (%s); positions are stored anyway", exc)


async def _restart_lost_logs(
    store: Store, seeker: PositionSeeker, consumer: Any, records: list[Any]
) -> list[Any]:
    """The records of partitions whose log is still the one their position belongs to; the
    others are read again from their beginning, their stored positions put back to 0."""

    async def forget(topic: str, partition: int) -> None:
        await asyncio.to_thread(store.restart_partition, topic, partition)
        seeker.known[(topic, partition)] = 0

    return await restart_lost_logs(seeker.watch, consumer, records, forget)


# What the store passes over, and why, for the log (the metrics count them by outcome).
_PASSED_OVER = {
    "duplicates": "a version already applied",
    "already_applied": "before the stored position",
    "not_projected": "unknown event type or refused payload",
}


def _say_what_was_passed_over(outcome: Outcome) -> None:
    passed = {name: getattr(outcome, name) for name in _PASSED_OVER if getattr(outcome, name)}
    if passed:
        log.info(
            "projections: passed over %d records (%s)",
            sum(passed.values()),
            ", ".join(f"{count} {name}: {_PASSED_OVER[name]}" for name, count in passed.items()),
        )


def _observe_lag(metrics: Instruments, seeker: PositionSeeker, consumer: Any) -> None:
    lag = 0
    for tp in seeker.assigned:
        high = consumer.highwater(tp)
        position = seeker.known.get((tp.topic, tp.partition))
        if high is not None and position is not None:
            lag += max(int(high) - position, 0)
    metrics.lag.set(lag)
