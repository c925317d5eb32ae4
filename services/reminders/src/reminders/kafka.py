"""Kafka at the edge of the reminders service: topics, the producer, where a key goes, and
the publisher that sends fired timers."""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.kafka import partition_for
from reminders.store import Pending

log = logging.getLogger(__name__)


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
