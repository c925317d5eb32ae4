"""Reading and writing Kafka topics from tests: plain aiokafka clients, no consumer group.

The broker lives for the whole test session, so a test never assumes an empty topic: it
notes the end offsets before it acts (`end_offsets`) and reads from there, keeping only the
records its own ids select. Every read has a deadline; nothing sleeps waiting for a consumer.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from chassis.kafka.producing import partition_ends

# Tansu answers a fetch after fetch_max_wait_ms; keep it short so a read returns promptly.
FETCH_MAX_WAIT_MS = 10
REQUEST_TIMEOUT_MS = 40_000

Offsets = dict[int, int]


@dataclass(frozen=True)
class Consumed:
    """One record as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = field(default=())

    def json(self) -> Any:
        assert self.value is not None, f"record {self.partition}/{self.offset} has no value"
        return orjson.loads(self.value)

    def header(self, name: str) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


@dataclass(frozen=True)
class Outgoing:
    """One record to publish: a key, bytes (None: a tombstone), optional headers and partition."""

    value: bytes | None
    key: bytes | None = None
    headers: Mapping[str, bytes] = field(default_factory=dict)
    partition: int | None = None


def end_offsets(bootstrap: str, topic: str) -> Offsets:
    """Where each partition of `topic` ends now: read from here to see only what comes next.
    A topic that does not exist yet gives {}: read it from the beginning once it does."""
    return asyncio.run(_end_offsets(bootstrap, topic))


def collect(
    bootstrap: str,
    topic: str,
    predicate: Callable[[Consumed], bool],
    count: int,
    deadline: float,
    start: Offsets | None = None,
    distinct: Callable[[Consumed], object] | None = None,
) -> list[Consumed]:
    """The records of `topic` after `start` (default: the beginning) that `predicate` keeps,
    once at least `count` of them arrived, plus every other kept record already published
    by then (redeliveries included). With `distinct`, `count` counts distinct values of it
    (e.g. event ids, so redeliveries do not count twice). Raises TimeoutError, saying what
    did arrive, when `deadline` seconds pass first."""
    return asyncio.run(_collect(bootstrap, topic, predicate, count, deadline, start, distinct))


def publish(bootstrap: str, topic: str, records: Iterable[Outgoing]) -> list[tuple[int, int]]:
    """Publish `records` in order, each acknowledged by the broker, with a plain producer;
    where each one landed: (partition, offset)."""
    return asyncio.run(_publish(bootstrap, topic, list(records)))


def publish_json(bootstrap: str, topic: str, key: str, message: Mapping[str, Any]) -> None:
    publish(bootstrap, topic, [Outgoing(orjson.dumps(dict(message)), key.encode())])


def event_id(record: Consumed) -> object:
    """The `event_id` a record carries: what redeliveries of one event share."""
    return record.json()["event_id"]


def keyed(*keys: str) -> Callable[[Consumed], bool]:
    """A predicate keeping records whose key is one of `keys`."""
    wanted = {key.encode() for key in keys}
    return lambda record: record.key in wanted


async def _end_offsets(bootstrap: str, topic: str) -> Offsets:
    async with _started(bootstrap) as consumer:
        partitions = await _partitions(consumer, topic, time.monotonic())
        if not partitions:
            return {}
        return await _ends(consumer, partitions)


async def _collect(
    bootstrap: str,
    topic: str,
    predicate: Callable[[Consumed], bool],
    count: int,
    deadline: float,
    start: Offsets | None,
    distinct: Callable[[Consumed], object] | None,
) -> list[Consumed]:
    until = time.monotonic() + deadline
    seen: set[object] = set()
    kept: list[Consumed] = []
    async with _started(bootstrap) as consumer:
        partitions = await _partitions(consumer, topic, until)
        if not partitions:
            raise TimeoutError(f"topic {topic!r} did not exist within {deadline} s")
        consumer.assign(partitions)
        for tp in partitions:
            if start is not None and tp.partition in start:
                consumer.seek(tp, start[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        stop_at: Offsets | None = None  # the ends once `count` records were kept
        while True:
            if stop_at is None and (len(seen) if distinct else len(kept)) >= count:
                # Read by a consumer of its own: `partition_ends` moves the one it is given.
                async with _started(bootstrap) as probe:
                    stop_at = await _ends(probe, partitions)
            if stop_at is not None and await _reached_all(consumer, partitions, stop_at):
                return kept
            left = until - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{topic}: {len(seen) if distinct else len(kept)} of {count} records "
                    f"after {deadline} s; "
                    f"kept: {_describe(kept)}"
                )
            batches = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for records in batches.values():
                for record in records:
                    consumed = Consumed(
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        key=record.key,
                        value=record.value,
                        headers=tuple(record.headers or ()),
                    )
                    if predicate(consumed):
                        kept.append(consumed)
                        if distinct is not None:
                            seen.add(distinct(consumed))


async def _ends(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> Offsets:
    """Where each of `partitions` ends now: the high watermark a fetch reports, not the
    consumer's `end_offsets` (Tansu's ListOffsets can answer one short, see `partition_ends`).
    Moves `consumer`: it is left assigned to `partitions`, wherever that fetch left it."""
    ends = await partition_ends(consumer, partitions)
    return {tp.partition: offset for tp, offset in ends.items()}


async def _reached_all(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], ends: Offsets
) -> bool:
    for tp in partitions:
        if int(await consumer.position(tp)) < ends[tp.partition]:
            return False
    return True


async def _publish(
    bootstrap: str, topic: str, records: Sequence[Outgoing]
) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=REQUEST_TIMEOUT_MS
    )
    await producer.start()
    landed = []
    try:
        for record in records:
            sent = await producer.send_and_wait(
                topic,
                record.value,
                key=record.key,
                partition=record.partition,
                headers=list(record.headers.items()),
            )
            landed.append((sent.partition, sent.offset))
    finally:
        await producer.stop()
    return landed


@contextlib.asynccontextmanager
async def _started(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer of no group, stopped however the block ends."""
    consumer = _consumer(bootstrap)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


async def _partitions(consumer: AIOKafkaConsumer, topic: str, until: float) -> list[TopicPartition]:
    """The topic's partitions; [] if it does not exist by `until` (a service creates its
    topics when it starts)."""
    while True:
        await consumer.topics()  # a metadata request naming every topic
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, partition) for partition in sorted(found)]
        if time.monotonic() >= until:
            return []
        await asyncio.sleep(0.1)


def _describe(records: Sequence[Consumed]) -> str:
    shown = [f"{r.partition}/{r.offset} key={r.key!r}" for r in records[:20]]
    return ", ".join(shown) + (" …" if len(records) > 20 else "")
