"""The consumer of `crm.opportunity.events` (group `reminders`): each batch goes to the event
intake (reminders.application.intake), which updates the opportunities' facts and next due
times in one transaction with the partitions' positions.

Positions live in the reminders database, not in Kafka: when partitions are assigned, the
consumer seeks to the positions stored there (the beginning, for a fresh database — that is
how the timers are rebuilt from scratch). Offsets are also committed to Kafka after each
batch, for lag monitoring only. A batch that cannot be made durable is taken again after a
pause; the consumer never stops on a record. A partition whose log is not the one its
position belongs to (chassis.kafka.logwatch) is read again from its beginning.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import Span, Tracer

from chassis.kafka.consuming import (
    StrandedCheck,
    batch_subscriber,
    commit_batch,
    high_watermark_of,
    restart_lost_logs,
)
from chassis.kafka.logwatch import LogWatch, Mark
from chassis.kafka.traces import consuming
from chassis.tracing import RecentSpans
from reminders.adapters.store import Store
from reminders.application.intake import TOPIC, EventIntake
from reminders.application.ownership import Ownership

log = logging.getLogger(__name__)

RETRY_PAUSE = 1.0


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
    others are read again from their beginning, their stored positions put back to 0."""

    async def forget(_: str, partition: int) -> None:
        await asyncio.to_thread(intake.restart_partition, partition)

    return await restart_lost_logs(watch, consumer, records, forget)


def _note(handled: RecentSpans[bytes], records: Sequence[Any], spans: Sequence[Span]) -> None:
    """Before the batch is applied, so the scheduler, which may fire what it plans at once,
    finds the spans (a batch that fails is taken again and noted again)."""
    for record, span in zip(records, spans, strict=True):
        if record.key is not None:
            handled.note(record.key, span.get_span_context())


def build_consumer(
    intake: EventIntake,
    rebalance: Rebalance,
    wake: Callable[[], None],
    group: str,
    fetch_max_wait_ms: int,
    session_timeout_ms: int,
    max_records: int = 500,
    tracer: Tracer | None = None,
    handled: RecentSpans[bytes] | None = None,
) -> tuple[KafkaRouter, Callable[[], Coroutine[Any, Any, None]]]:
    """The consumer of the events topic, and the check of partitions stranded past the end
    of a new log (to run beside the broker). With a tracer, each record's handling is a span
    (chassis.kafka.traces), noted in `handled` by the opportunity (the record's key): the
    next reminder of that opportunity continues its trace."""
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
    stranded = StrandedCheck(
        lambda consumer: _restart_lost_logs(intake, rebalance.watch, consumer, [])
    )

    @subscriber
    async def take_events(_: list[Any], message: KafkaMessage) -> None:
        async with stranded.lock:
            await _take(message)

    async def _take(message: KafkaMessage) -> None:
        records: Sequence[Any] = message.raw_message
        consumer: Any = message.consumer
        try:
            records = await _restart_lost_logs(intake, rebalance.watch, consumer, records)
            if not records:
                return
            rereading = frozenset(p for _, p in rebalance.watch.rereading)
            with consuming(tracer, "reminders handle", records) as spans:
                if handled is not None:
                    _note(handled, records, spans)
                due_now = await asyncio.to_thread(intake.apply, records, rereading)
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

    return router, lambda: stranded.run(subscriber)
