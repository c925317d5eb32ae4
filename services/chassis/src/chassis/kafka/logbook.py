"""What a producer knows of the Kafka log it fills, and how it finds that the broker lost it.

A producer that must not lose what it published (the opportunity service's relay, the
reminders' outbox) writes down, with what it marks sent, where each partition it published to
ends (the offset after the last record the broker acknowledged) and the epoch of the log: a
name it stamps on every record (`chassis.kafka.logwatch.EPOCH_HEADER`). The broker lost what
it had acknowledged when a send lands before such an end, or when a partition's high
watermark is below it, or the topic is gone (the embedded broker started again, a topic
deleted and created again, a cluster replaced, a volume lost). The producer then starts a new
epoch and publishes again, from its own store, what its readers may still need.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from chassis.kafka.producing import Landed, ensure_topics, partition_ends
from chassis.settings import OppstreamSettings

Partition = tuple[str, int]


def new_epoch() -> str:
    return uuid.uuid4().hex


@dataclass
class LogBook:
    """The epoch a producer publishes in and where each partition it filled should end."""

    epoch: str
    ends: dict[Partition, int] = field(default_factory=dict)

    def lost_in(self, landed: dict[Partition, Landed]) -> list[str]:
        """Why the broker must have lost its log, judging by where a send landed."""
        return [
            f"{topic}/{partition}: records landed at offset {where.first}, "
            f"the broker had acknowledged up to {self.ends[(topic, partition)]}"
            for (topic, partition), where in sorted(landed.items())
            if where.first < self.ends.get((topic, partition), 0)
        ]

    def lost_at(self, high_watermarks: dict[Partition, int | None]) -> list[str]:
        """Why the broker must have lost its log, judging by where its partitions end now
        (None: the topic or the partition is not there)."""
        found = []
        for key, end in sorted(self.ends.items()):
            high = high_watermarks.get(key)
            if high is None:
                found.append(f"{key[0]}/{key[1]}: gone from the broker, which had {end} records")
            elif high < end:
                found.append(
                    f"{key[0]}/{key[1]}: ends at {high}, the broker had acknowledged {end}"
                )
        return found

    def landed(self, landed: dict[Partition, Landed]) -> None:
        for key, where in landed.items():
            self.ends[key] = max(self.ends.get(key, 0), where.end)


def summary(lost: list[str]) -> str:
    """The first few reasons a log was found lost, for one log line."""
    return "; ".join(lost[:4]) + (f"; and {len(lost) - 4} more" if len(lost) > 4 else "")


@dataclass
class LogProbe:
    """Asks the broker where the partitions a producer filled end now, at most every
    `interval` seconds while the producer is idle (a busy one learns it from its sends)."""

    make_consumer: Callable[[], AIOKafkaConsumer]
    create_topics: Callable[[], Awaitable[None]]
    interval: float
    _last: float = field(default=0.0)

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval

    async def high_watermarks(self, wanted: list[Partition]) -> dict[Partition, int | None]:
        self._last = time.monotonic()
        consumer = self.make_consumer()
        await consumer.start()
        try:
            present = await consumer.topics()
            there: list[TopicPartition] = []
            for topic, partition in wanted:
                known = consumer.partitions_for_topic(topic) if topic in present else None
                if known and partition in known:
                    there.append(TopicPartition(topic, partition))
            ends = await asyncio.wait_for(partition_ends(consumer, there), timeout=30)
        finally:
            await consumer.stop()
        found: dict[Partition, int | None] = dict.fromkeys(wanted)
        found.update({(tp.topic, tp.partition): high for tp, high in ends.items()})
        return found

    async def lost(self, book: LogBook) -> list[str]:
        """Why the broker lost what `book` says it acknowledged (empty: it did not)."""
        if not book.ends:
            return []
        return book.lost_at(await self.high_watermarks(sorted(book.ends)))


def log_probe(settings: OppstreamSettings, interval: float) -> LogProbe:
    """A probe of the configured broker that creates oppstream's topics again when asked."""

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            enable_auto_commit=False,
        )

    return LogProbe(consumer, lambda: ensure_topics(settings), interval)
