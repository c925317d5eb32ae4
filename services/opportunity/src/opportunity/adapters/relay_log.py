"""What the relay knows of the Kafka log it fills, and how it finds that the broker lost it.

The relay writes down, with its position, where each partition it published to ends (the
offset after the last record the broker acknowledged) and the epoch of the log: a name it
stamps on every record (`chassis.kafka.logwatch.EPOCH_HEADER`). The broker lost what it had
acknowledged when a send lands before such an end, or when a partition's high watermark is
below it, or the topic is gone (the embedded broker started again, a topic deleted and created
again, a cluster replaced, a volume lost). The relay then starts a new epoch and publishes the
whole event history again from the event store, the truth; the consumers see the new epoch,
read the partition again from its beginning, and take each event once by its identity.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition

from chassis.kafka.producing import Landed, partition_ends
from opportunity.adapters.positions import metadata

log = logging.getLogger(__name__)

Partition = tuple[str, int]

relay_log = sa.Table(
    "oppstream_relay_log",
    metadata,
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    sa.Column("epoch", sa.String(64), nullable=False),
)


def new_epoch() -> str:
    return uuid.uuid4().hex


@dataclass
class LogBook:
    """The epoch the relay publishes in and where each partition it filled should end."""

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


def read_book(conn: sa.Connection, epoch: str) -> LogBook:
    """The stored book; with nothing stored, an empty one in `epoch`."""
    rows = conn.execute(sa.select(relay_log)).all()
    if not rows:
        return LogBook(epoch)
    return LogBook(
        rows[0].epoch, {(row.topic, int(row.partition)): int(row.next_offset) for row in rows}
    )


def write_book(conn: sa.Connection, book: LogBook, changed: set[Partition] | None = None) -> None:
    """Store the ends (those in `changed`, else all) in the caller's transaction."""
    keys = sorted(book.ends if changed is None else changed)
    if not keys:
        return
    conn.execute(
        sa.delete(relay_log).where(sa.tuple_(relay_log.c.topic, relay_log.c.partition).in_(keys))
    )
    conn.execute(
        sa.insert(relay_log),
        [
            {"topic": t, "partition": p, "next_offset": book.ends[(t, p)], "epoch": book.epoch}
            for t, p in keys
        ],
    )


def start_over(conn: sa.Connection) -> LogBook:
    """Forget the lost log (in the caller's transaction): a new epoch, no ends."""
    conn.execute(sa.delete(relay_log))
    return LogBook(new_epoch())


@dataclass
class LogProbe:
    """Asks the broker where the partitions the relay filled end now, at most every
    `interval` seconds while the relay is idle (a busy relay learns it from its sends)."""

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
