"""Kafka plumbing every service shares: the topics created at start, the producer they
publish with, and the partition a key goes to."""

import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from contracts import topics
from contracts.settings import OppstreamSettings

log = logging.getLogger(__name__)

# One produce request per partition per batch keeps a partition's records in order even
# when a request fails (see the opportunity service's relay).
MAX_BATCH_BYTES = 512 * 1024


async def ensure_topics(settings: OppstreamSettings) -> None:
    """Create the topics that do not exist yet, with the configured partition count."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.topic_partitions, settings.topic_replication)
            for name in topics.ALL
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


_partitioner = DefaultPartitioner()


def partition_for(key: bytes, partitions: list[int]) -> int:
    """The partition the Java client's default partitioner picks (murmur2 of the key)."""
    return int(_partitioner(key, partitions, partitions))


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
