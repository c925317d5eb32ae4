"""Kafka at the edge of the reminders service: topics, the producer, where a key goes, and
the publisher that sends fired timers."""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from contracts import topics
from reminders.settings import Settings
from reminders.store import Pending

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes


def outgoing(rows: Sequence[Pending]) -> list[Outgoing]:
    """The messages of fired timers: the reminder on `crm.reminders`, the reclaim or renewal
    command on `crm.opportunity.commands`, both keyed by the opportunity."""
    found = []
    for row in rows:
        key = row.opportunity_id.encode()
        if row.reminder is not None:
            found.append(Outgoing(topics.REMINDERS, key, bytes(row.reminder)))
        if row.command is not None:
            found.append(Outgoing(topics.OPPORTUNITY_COMMANDS, key, bytes(row.command)))
    return found


class Publisher(Protocol):
    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Return once the broker acknowledged every message; raise otherwise."""


async def ensure_topics(settings: Settings) -> None:
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
            # Another service may create them at the same moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("created topics %s", [t.name for t in missing])
    finally:
        await admin.close()


def new_producer(settings: Settings) -> AIOKafkaProducer:
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


class KafkaPublisher:
    """Sends each partition's messages in as few produce requests as fit, one after the
    other, all partitions at once; a failure drops the producer (the next call makes a new
    one) and the caller keeps the rows pending."""

    def __init__(self, make_producer: Callable[[], AIOKafkaProducer]) -> None:
        self._make_producer = make_producer
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, list[int]] = {}

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        if not messages:
            return
        producer = await self._ensure()
        try:
            by_partition: dict[tuple[str, int], list[Outgoing]] = defaultdict(list)
            for message in messages:
                if message.topic not in self._partitions:
                    found = await producer.partitions_for(message.topic)
                    self._partitions[message.topic] = sorted(found)
                partition = partition_for(message.key, self._partitions[message.topic])
                by_partition[(message.topic, partition)].append(message)
            await asyncio.gather(
                *(
                    _send_in_order(producer, topic, partition, items)
                    for (topic, partition), items in by_partition.items()
                )
            )
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        self._partitions.clear()
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception as exc:  # a producer that cannot even stop is dropped anyway
                log.debug("publisher: dropping producer: %s", exc)

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._make_producer()
            await producer.start()
            self._producer = producer
        return self._producer


async def _send_in_order(
    producer: AIOKafkaProducer, topic: str, partition: int, items: list[Outgoing]
) -> None:
    batch = producer.create_batch()
    for message in items:
        if _append(batch, message) is None:
            await _send(producer, batch, topic, partition)
            batch = producer.create_batch()
            if _append(batch, message) is None:
                raise ValueError(f"a message of {len(message.value)} bytes exceeds a batch")
    await _send(producer, batch, topic, partition)


def _append(batch: Any, message: Outgoing) -> Any:
    return batch.append(key=message.key, value=message.value, timestamp=None)


async def _send(producer: AIOKafkaProducer, batch: Any, topic: str, partition: int) -> None:
    batch.close()
    await (await producer.send_batch(batch, topic, partition=partition))
