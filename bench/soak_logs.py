"""What the soak reads to check: the topics' records (with where each partition ended and the
relay's log epoch) and the event store's history from its /notifications feed."""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from chassis.kafka.logwatch import epoch_of
from chassis.kafka.producing import partition_ends
from contracts.customer_record import is_customer_event


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any]
    epoch: str | None = None  # the relay's log epoch header, on the events topic


@dataclass
class TopicLog:
    """Records read from topics, and where each partition ended when they were read."""

    records: dict[str, list[Record]] = field(default_factory=dict)
    ends: dict[str, dict[int, int]] = field(default_factory=dict)

    def extend(self, more: "TopicLog") -> None:
        for name, found in more.records.items():
            self.records.setdefault(name, []).extend(found)
            self.ends.setdefault(name, {}).update(more.ends.get(name, {}))

    def count(self, name: str) -> int:
        return len(self.records.get(name, ()))


class History:
    """Every recorded event, in recording order, from the service's /notifications feed;
    `catch_up` reads on from where the last reading stopped."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.envelopes: list[dict[str, Any]] = []
        self.versions: dict[str, int] = {}  # opportunity id → its last recorded version
        self.from_leads: set[str] = set()  # lead ids that created an opportunity
        self._after = 0

    def catch_up(self) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
            while True:
                page = client.get("/notifications", params={"after": self._after, "limit": 10_000})
                page.raise_for_status()
                body = page.json()
                if not body["items"]:
                    return self.envelopes
                for item in body["items"]:
                    self._take(item["envelope"])
                self._after = body["next_after"]

    def _take(self, envelope: dict[str, Any]) -> None:
        self.envelopes.append(envelope)
        if is_customer_event(envelope["event_type"]):
            return  # a customer record's (SPEC §8.1): bi_opportunity has no row of it
        oid = envelope["opportunity_id"]
        self.versions[oid] = max(self.versions.get(oid, 0), envelope["version"])
        lead = envelope["payload"].get("lead_id")
        if envelope["event_type"] == "OpportunityCreated" and lead:
            self.from_leads.add(lead)


def history(url: str, token: str) -> list[dict[str, Any]]:
    """Every recorded event, in recording order, from the service's /notifications feed."""
    return History(url, token).catch_up()


async def read_topic(
    bootstrap: str, topic: str, after: dict[int, int] | None = None
) -> tuple[list[Record], dict[int, int]]:
    """Every record of `topic` from the start (or from the offsets `after`) up to its end
    now, partition by partition; and where each partition ended."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=60000
    )
    await consumer.start()
    try:
        parts = await partitions(consumer, topic)
        ends = await partition_ends(consumer, parts)
        await consumer.seek_to_beginning(*parts)
        for part in parts:
            if after and part.partition in after:
                consumer.seek(part, min(after[part.partition], ends[part]))
        records: list[Record] = []
        while [p for p in parts if await consumer.position(p) < ends[p]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for part, found in batches.items():
                records += [
                    Record(part.partition, r.offset, r.key, _json(r.value), epoch_of(r))
                    for r in found
                    if r.offset < ends[part]
                ]
        return records, {p.partition: end for p, end in ends.items()}
    finally:
        await consumer.stop()


def read_log(bootstrap: str, names: Iterable[str], after: TopicLog | None = None) -> TopicLog:
    """The records of the topics `names` up to their ends now (from `after`'s ends if given)."""

    async def read_all() -> TopicLog:
        log = TopicLog()
        for name in names:
            since = after.ends.get(name) if after is not None else None
            log.records[name], log.ends[name] = await read_topic(bootstrap, name, since)
        return log

    return asyncio.run(read_all())


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await consumer.topics()  # fresh metadata
    return [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Where each partition of `topic` ends now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=60000
    )
    await consumer.start()
    try:
        ends = await partition_ends(consumer, await partitions(consumer, topic))
        return {p.partition: end for p, end in ends.items()}
    finally:
        await consumer.stop()


async def committed_past_end(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """How many partitions of `topic` the consumer group `group` has committed past their
    end (a group standing beyond a log that lost its records), of how many."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=60000,
    )
    await consumer.start()
    try:  # not subscribed: the group is asked for its offsets, never joined
        parts = await partitions(consumer, topic)
        committed = {part: await consumer.committed(part) for part in parts}
    finally:
        await consumer.stop()
    ends = await end_offsets(bootstrap, topic)
    past = sum(1 for part, at in committed.items() if at is not None and at > ends[part.partition])
    return past, len(parts)


def _json(value: bytes | None) -> dict[str, Any]:
    try:
        decoded = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def read_topics(bootstrap: str, *names: str) -> dict[str, list[Record]]:
    return read_log(bootstrap, names).records
