"""How far the readers of the events topic have come, in the relay's own positions: what the
relay must publish again when the broker lost its log.

The readers are consumer groups (projections, reminders: `OPPSTREAM_RELAY_READER_GROUPS`).
After each batch the relay notes its position and where each partition of the events topic
ends (`Progress.published`). A group that committed offset `c` on a partition has read every
record before `c`, so every event of that partition up to the last position the relay stood at
while the partition ended at or before `c`. The least of these over the groups and partitions
is a position every reader has read through (`Progress.read_by_all`); the relay stores it,
and after a loss publishes again from there rather than from the beginning of the history.

Once the relay started a new log, a commit can belong to the log the broker lost (a group that
has not read the new one yet, where the broker kept the groups' commits): from then on a
commit is not trusted until it changes. A partition a group never
committed counts as read up to offset 0. Whatever cannot be told keeps the stored position,
which only ever rises: an unknown reader makes the relay publish more, never less.
"""

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from chassis.settings import OppstreamSettings

Commits = dict[tuple[str, int], int]  # (group, partition) → committed offset
MAX_MARKS = 4096


@dataclass
class Progress:
    """The relay's marks in the current log, and how far every reader has read in it."""

    read_by_all: int  # stored: every reader has every event up to this position
    marks: list[tuple[int, dict[int, int]]] = field(default_factory=list)
    # In a log this relay started: each commit as first seen (None: every commit is trusted).
    _first_seen: Commits | None = None

    def published(self, position: int, ends: dict[int, int]) -> None:
        """The relay stands at `position`; the events topic's partitions end at `ends`."""
        self.marks.append((position, dict(ends)))
        if len(self.marks) > MAX_MARKS:  # fewer marks only make the answer lower
            half = len(self.marks) // 2
            self.marks = self.marks[:half:2] + self.marks[half:]

    def read(self, groups: list[str], partitions: list[int], commits: Commits) -> int:
        """The new position every reader has read through, given the groups' commits on the
        events topic's `partitions` (never lower than before)."""
        through = []
        for group in groups:
            for partition in partitions:
                committed = commits.get((group, partition), 0)
                trusted = True
                if self._first_seen is not None:
                    seen = self._first_seen.setdefault((group, partition), committed)
                    trusted = committed == 0 or committed != seen
                through.append(self._through(partition, committed) if trusted else None)
        known = [t for t in through if t is not None]
        if self.marks and len(known) == len(through) and known:
            self.read_by_all = max(self.read_by_all, min(known))
        self.marks = [m for m in self.marks if m[0] >= self.read_by_all]
        return self.read_by_all

    def start_over(self) -> None:
        """A new log: no marks, and every commit seen from now on is new to it."""
        self.marks.clear()
        self._first_seen = {}

    def _through(self, partition: int, committed: int) -> int | None:
        found = None
        for position, ends in self.marks:
            if ends.get(partition, 0) <= committed:
                found = position
        return found


@dataclass
class ReaderCommits:
    """Reads the groups' commits on a topic from the broker (one idle consumer a group, kept
    between reads: it never joins the group)."""

    make_consumer: Callable[[str], AIOKafkaConsumer]
    _consumers: dict[str, AIOKafkaConsumer] = field(default_factory=dict)

    async def fetch(self, topic: str, groups: list[str], partitions: list[int]) -> Commits:
        found: Commits = {}
        try:
            for group in groups:
                consumer = await self._consumer(group)
                offsets = await asyncio.wait_for(
                    asyncio.gather(
                        *(consumer.committed(TopicPartition(topic, p)) for p in partitions)
                    ),
                    timeout=30,
                )
                found.update(
                    {(group, p): int(o) for p, o in zip(partitions, offsets, strict=True) if o}
                )
        except BaseException:
            await self.close()
            raise
        return found

    async def close(self) -> None:
        consumers, self._consumers = list(self._consumers.values()), {}
        for consumer in consumers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), timeout=5)

    async def _consumer(self, group: str) -> AIOKafkaConsumer:
        if group not in self._consumers:
            consumer = self.make_consumer(group)
            await consumer.start()
            self._consumers[group] = consumer
        return self._consumers[group]


def reader_commits(settings: OppstreamSettings) -> ReaderCommits:
    def consumer(group: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=group,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            enable_auto_commit=False,
        )

    return ReaderCommits(consumer)
