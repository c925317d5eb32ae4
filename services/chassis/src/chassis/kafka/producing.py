"""Kafka plumbing every service shares: the topics created at start, the producer they
publish with, the partition a key goes to, and records sent in per-partition order."""

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from chassis.settings import OppstreamSettings
from contracts import topics

log = logging.getLogger(__name__)

# One produce request per partition per batch keeps a partition's records in order even
# when a request fails (see the opportunity service's relay).
MAX_BATCH_BYTES = 512 * 1024


async def ensure_topics(settings: OppstreamSettings, names: Iterable[str] = topics.ALL) -> None:
    """Create the topics (all of oppstream's unless named) that do not exist yet, with the
    configured partition count."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.topic_partitions, settings.topic_replication)
            for name in names
            if name not in existing
        ]
        if missing:
            # Another service, or another copy, may create them at the same moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


def new_producer(settings: OppstreamSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=2 * MAX_BATCH_BYTES,
    )


@dataclass(frozen=True)
class Outgoing:
    """A record to send: the partition its key goes to gets it."""

    topic: str
    key: bytes
    value: bytes
    timestamp_ms: int | None = None  # None: when the producer sends it
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def partition_for(key: bytes, partitions: list[int]) -> int:
    """The partition the Java client's default partitioner picks (murmur2 of the key)."""
    return partitions[_key_hash(key) % len(partitions)]


# murmur2 in pure Python costs more than the rest of a record's send; an aggregate's events
# come in runs, so the hashes of the keys seen last answer most records.
@functools.lru_cache(maxsize=16384)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


async def partition_ends(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Where each partition ends now, as a fetch reports it (its high watermark); the
    consumer is left assigned to `partitions`. Not `end_offsets`: Tansu answers ListOffsets
    one short when a partition's last batch holds several records."""
    listed = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    for partition in partitions:
        consumer.seek(partition, max(0, listed[partition] - 1))
    ends: dict[TopicPartition, int] = {}
    while len(ends) < len(partitions):
        await consumer.getmany(*partitions, timeout_ms=500)
        for partition in partitions:
            high = consumer.highwater(partition)
            if high is not None:
                ends[partition] = high
    return ends


@dataclass(frozen=True)
class Landed:
    """Where the broker put one partition's records of a send: from `first` to before `end`."""

    first: int
    end: int


async def produce_in_order(
    producer: AIOKafkaProducer,
    records: Sequence[Outgoing],
    partitions: dict[str, list[int]] | None = None,
) -> dict[tuple[str, int], Landed]:
    """Send the records, all partitions at once, each partition's in as few produce requests
    as fit, each after the last (so a failed request is never overtaken by a later one);
    return once the broker acknowledged every one, with the offsets each partition's records
    got. `partitions` keeps each topic's partitions from one call to the next."""
    known = {} if partitions is None else partitions
    by_partition: dict[tuple[str, int], list[Outgoing]] = defaultdict(list)
    for record in records:
        if record.topic not in known:
            known[record.topic] = sorted(await producer.partitions_for(record.topic))
        partition = partition_for(record.key, known[record.topic])
        by_partition[(record.topic, partition)].append(record)
    landed = await asyncio.gather(
        *(
            _send_in_order(producer, topic, partition, items)
            for (topic, partition), items in by_partition.items()
        )
    )
    return dict(zip(by_partition, landed, strict=True))


async def _send_in_order(
    producer: AIOKafkaProducer, topic: str, partition: int, items: list[Outgoing]
) -> Landed:
    batch = producer.create_batch()
    first: int | None = None
    for record in items:
        if _append(batch, record) is None:
            sent = await _send(producer, batch, topic, partition)
            first = sent.first if first is None else first
            batch = producer.create_batch()
            if _append(batch, record) is None:
                raise ValueError(f"a record of {len(record.value)} bytes exceeds a batch")
    sent = await _send(producer, batch, topic, partition)
    return Landed(sent.first if first is None else first, sent.end)


def _append(batch: Any, record: Outgoing) -> Any:
    return batch.append(
        key=record.key, value=record.value, timestamp=record.timestamp_ms, headers=record.headers
    )


async def _send(producer: AIOKafkaProducer, batch: Any, topic: str, partition: int) -> Landed:
    count = batch.record_count()
    batch.close()
    metadata = await (await producer.send_batch(batch, topic, partition=partition))
    return Landed(metadata.offset, metadata.offset + count)
