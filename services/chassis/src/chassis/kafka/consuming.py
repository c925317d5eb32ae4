"""What every service's Kafka consumers share: batches of records taken as bytes and
acknowledged by hand (never FastStream's ack-first default, which could lose a message:
faststream #2618/#1980), and the offsets a batch reaches."""

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber

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
