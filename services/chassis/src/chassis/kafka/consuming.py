"""What every service's Kafka consumers share: batches of records taken as bytes and
acknowledged by hand (never FastStream's ack-first default, which could lose a message:
faststream #2618/#1980), and the offsets a batch reaches."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber

from chassis.kafka.logwatch import LogWatch

log = logging.getLogger(__name__)

# aiokafka's default: what one fetch may bring of one partition.
PARTITION_FETCH_BYTES = 1024 * 1024


class ConsumedRecord(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


async def undecoded(message: Any) -> Any:
    """Hand records over as bytes: the service decides what is a message and what is poison."""
    return message.body


def batch_subscriber(
    router: KafkaRouter,
    topic: str,
    group: str,
    *,
    fetch_max_wait_ms: int,
    session_timeout_ms: int,
    max_records: int,
    listener: ConsumerRebalanceListener | None = None,
    max_partition_fetch_bytes: int = PARTITION_FETCH_BYTES,
) -> BatchSubscriber:
    """A member of `group` taking `topic` in batches of up to `max_records` undecoded
    records, from the earliest record when the group has no position yet."""
    return router.subscriber(
        topic,
        group_id=group,
        batch=True,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        max_records=max_records,
        fetch_max_wait_ms=fetch_max_wait_ms,
        batch_timeout_ms=max(fetch_max_wait_ms, 10),
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(session_timeout_ms // 10, 500),
        # A member that heartbeats but never rejoins (a stuck copy) must not hold a
        # rebalance for aiokafka's default five minutes.
        rebalance_timeout_ms=2 * session_timeout_ms,
        max_partition_fetch_bytes=max_partition_fetch_bytes,
        listener=listener,
        decoder=undecoded,
    )


async def commit_batch(message: KafkaMessage, records: Sequence[ConsumedRecord]) -> None:
    """Commit, for each partition of the batch, the offset after its last record (never the
    consumer's whole position); KafkaError when a rebalance took the partitions."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    consumer: Any = message.consumer
    await consumer.commit(offsets)


def high_watermark_of(consumer: Any) -> Callable[[str, int], int | None]:
    """Where a partition ends, as the consumer's last fetch saw it (None: not fetched yet, or
    not this consumer's)."""

    def high(topic: str, partition: int) -> int | None:
        tp = TopicPartition(topic, partition)
        if tp not in consumer.assignment():  # another consumer's, or given away
            return None
        found = consumer.highwater(tp)
        return None if found is None else int(found)

    return high


def fetch_positions(consumer: Any) -> dict[tuple[str, int], int]:
    """Where the consumer fetches each assigned partition next, where it knows (not yet right
    after an assignment). aiokafka offers this only as a coroutine that may wait for the
    broker; its subscription state answers at once."""
    state = getattr(consumer, "_subscription", None)  # None: a consumer that keeps no state
    subscription = state.subscription if state is not None else None
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return {}
    found: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        state = assignment.state_value(tp)
        if state is not None and state.has_valid_position:
            found[(tp.topic, tp.partition)] = int(state.position)
    return found


async def restart_lost_logs(
    watch: LogWatch,
    consumer: Any,
    records: Sequence[Any],
    forget: Callable[[str, int], Awaitable[None]] | None = None,
) -> list[Any]:
    """The records of partitions whose log is still the one their position belongs to. Each
    other partition (one of the records shows it, or it is assigned and its log ends before
    where the consumer fetches) is read again from its beginning: `forget` puts its stored
    position back first, for a consumer that stores its own."""
    high = high_watermark_of(consumer)
    lost = watch.check(records, high)
    shown = {(loss.topic, loss.partition) for loss in lost}
    lost += [
        s
        for s in watch.stranded(fetch_positions(consumer), high)
        if (s.topic, s.partition) not in shown
    ]
    for loss in lost:
        if forget is not None:
            await forget(loss.topic, loss.partition)
        watch.restart(loss)
        consumer.seek(TopicPartition(loss.topic, loss.partition), 0)
    gone = {(loss.topic, loss.partition) for loss in lost}
    return [r for r in records if (r.topic, r.partition) not in gone]


@dataclass
class StrandedCheck:
    """FastStream hands a batch handler no empty batch. A consumer whose partitions all lie
    past the end of a new, shorter log gets nothing (Tansu answers such a fetch with no
    records, not "out of range"): its handler would not run until the new log grew past its
    positions, then it would skip what lay below. So every `interval` seconds this runs the
    service's check (its `restart_lost_logs` with no records) on the subscriber's consumer,
    in turn with the handler: the handler holds `lock` too."""

    check: Callable[[Any], Awaitable[object]]
    interval: float = 1.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def run(self, subscriber: Any) -> None:
        while True:
            await asyncio.sleep(self.interval)
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None or not consumer.assignment():
                continue
            try:
                async with self.lock:
                    await self.check(consumer)
            except Exception as exc:  # the store or the broker away: the next round again
                log.warning("stranded partitions check: %s", exc)
