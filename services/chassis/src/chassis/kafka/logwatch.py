"""Whether the log a consumer reads is still the log its positions belong to.

The event store is the truth and Kafka a transport: a broker can lose its log (the embedded
broker started again, a topic deleted and created again, a cluster replaced, a volume lost)
while the consumers keep positions that point into the old one. A consumer notices in three
ways:

- a partition ends (its high watermark) before where the consumer stood: a log never shrinks;
- a partition's records go back before where it stood: the broker answered "out of range" and
  the consumer started again at the beginning of a new, shorter log (only for a consumer that
  keeps its own positions: where the group's commits put a consumer may lie behind it);
- a record carries another log epoch than the last one taken from its partition: the relay
  found that the broker lost what it had acknowledged and publishes again what its readers
  may lack under a new epoch (`EPOCH_HEADER`), possibly past the consumer's old position.

Either way the consumer reads that partition again from its beginning. What it does with a
record is idempotent by the event's own identity (opportunity id and version, lead id, command
id), so reading again costs time, never a second effect.
"""

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)

# Header of every record the relay publishes: the log epoch it fills.
EPOCH_HEADER = "oppstream-log-epoch"


class Record(Protocol):
    topic: str
    partition: int
    offset: int

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class Mark:
    """Where a partition stands: the next offset to read and the epoch of the last record
    taken (None: any epoch is taken as it comes)."""

    next_offset: int
    epoch: str | None = None


@dataclass(frozen=True)
class Lost:
    """A partition whose log is not the one its position belongs to, and the evidence."""

    topic: str
    partition: int
    kind: str  # "ended" (high watermark below), "went_back" (offsets), "new_epoch"
    reason: str
    offset: int  # where the record that showed it stands
    epoch: str | None


@dataclass
class Rereading:
    reason: str
    since: float
    since_wall: float
    records: int = 0


def epoch_of(record: Record) -> str | None:
    for name, value in record.headers or ():
        if name == EPOCH_HEADER:
            return value.decode("ascii", "replace")
    return None


@dataclass
class LogMetrics:
    losses: Counter
    rereading: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> "LogMetrics":
        return cls(
            Counter(
                "oppstream_log_losses_total",
                "Times a consumer found that the log it reads is not the one its positions "
                "belong to, by reason: ended (a high watermark below its position), went_back "
                "(offsets went back), new_epoch (the relay started a new log epoch); it reads "
                "the partition again from its beginning",
                ["topic", "reason"],
                registry=registry,
            ),
            Gauge(
                "oppstream_log_rereading_partitions",
                "Partitions this consumer reads again after a lost log, until it reaches their end",
                ["topic"],
                multiprocess_mode="livesum",
                registry=registry,
            ),
        )


HighWatermark = Callable[[str, int], int | None]


@dataclass
class LogWatch:
    """One consumer's view of the partitions it reads: where each one stands, which are
    being read again after a loss, and since when. `own_positions`: the consumer seeks to
    positions it stores itself (else it starts where the group committed)."""

    service: str
    metrics: LogMetrics
    own_positions: bool = True
    marks: dict[tuple[str, int], Mark] = field(default_factory=dict)
    rereading: dict[tuple[str, int], Rereading] = field(default_factory=dict)
    # Epochs a partition was already read again for: meeting one of them again is no loss.
    _adopted: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    # Partitions sought to the record before their mark, to see its epoch again.
    _verifying: set[tuple[str, int]] = field(default_factory=set)

    def expect(self, topic: str, partition: int, mark: Mark | None) -> None:
        """The consumer now reads `partition` from `mark` (None: from its beginning)."""
        key = (topic, partition)
        self._verifying.discard(key)
        if mark is None:
            self.marks.pop(key, None)
        else:
            self.marks[key] = mark

    def start_at(self, topic: str, partition: int, mark: Mark | None) -> int:
        """Where to seek a partition just assigned at `mark`: the record before it, whose
        epoch must be the mark's (a new log may already be as long as the old one was)."""
        self.expect(topic, partition, mark)
        if mark is None:
            return 0
        if mark.next_offset > 0 and mark.epoch is not None:
            self._verifying.add((topic, partition))
            return mark.next_offset - 1
        return mark.next_offset

    def forget(self, topic: str, partition: int) -> None:
        """The partition went to another member (what it did there may put the partition
        anywhere, but never at an end before where this consumer stood)."""
        if self.own_positions:
            self.marks.pop((topic, partition), None)
        if self.rereading.pop((topic, partition), None) is not None:
            self.metrics.rereading.labels(topic).dec()

    def check(self, records: Iterable[Record], high_watermark: HighWatermark) -> list[Lost]:
        """The partitions among `records` whose log is not the one they were read from
        before, one finding each (changes nothing: see `took` and `restart`)."""
        found: dict[tuple[str, int], Lost] = {}
        marks = dict(self.marks)
        for record in records:
            key = (record.topic, record.partition)
            if key in found:
                continue
            epoch = epoch_of(record)
            mark = marks.get(key)
            if mark is not None:
                offset = record.offset
                if key in self._verifying and offset == mark.next_offset - 1:
                    offset = mark.next_offset  # the record sought to see its epoch again
                evidence = self._evidence(key, mark, offset, epoch, high_watermark(*key))
                if evidence is not None:
                    found[key] = Lost(key[0], key[1], *evidence, record.offset, epoch)
                    continue
            if mark is None or record.offset >= mark.next_offset:
                marks[key] = Mark(record.offset + 1, epoch or (mark.epoch if mark else None))
        return list(found.values())

    def _evidence(
        self, key: tuple[str, int], mark: Mark, offset: int, epoch: str | None, high: int | None
    ) -> tuple[str, str] | None:
        """(kind, reason) when the log is not the one `mark` belongs to."""
        stood = mark.next_offset
        if high is not None and high < stood:
            return "ended", f"the log ends at {high}, before where this consumer stood ({stood})"
        if self.own_positions and offset < stood:
            return (
                "went_back",
                f"offsets went back: record at {offset}, this consumer stood at {stood}",
            )
        if (
            epoch is not None
            and mark.epoch is not None
            and epoch != mark.epoch
            and epoch not in self._adopted.get(key, ())
        ):
            return (
                "new_epoch",
                f"the relay publishes log epoch {epoch}; this partition was read in epoch {mark.epoch}",
            )
        return None

    def stranded(self, positions: dict[tuple[str, int], int], high: HighWatermark) -> list[Lost]:
        """Partitions whose log ends before where the consumer fetches: a new, shorter log
        (a broker that does not answer "out of range" sends nothing there, and the consumer
        would wait until the log grows past it and skip what lies below)."""
        found = []
        for (topic, partition), position in sorted(positions.items()):
            end = high(topic, partition)
            # A consumer that keeps its own positions stood at its mark, even while it fetches
            # the record before it again to verify that record's epoch.
            mark = self.marks.get((topic, partition)) if self.own_positions else None
            stood = max(position, mark.next_offset) if mark is not None else position
            if end is not None and end < stood:
                reason = f"the log ends at {end}, before where this consumer stood ({stood})"
                found.append(Lost(topic, partition, "ended", reason, position, None))
        return found

    def took(self, records: Iterable[Record]) -> None:
        """`records` are durable: the partitions stand after them."""
        for record in records:
            key = (record.topic, record.partition)
            self._verifying.discard(key)
            mark = self.marks.get(key)
            if mark is not None and record.offset < mark.next_offset:
                continue
            epoch = epoch_of(record) or (mark.epoch if mark else None)
            self.marks[key] = Mark(record.offset + 1, epoch)
            reading = self.rereading.get(key)
            if reading is not None:
                reading.records += 1

    def restart(self, lost: Lost) -> None:
        """The consumer reads `lost`'s partition again from its beginning: say so and count
        it until `caught_up` says it reached the end."""
        key = (lost.topic, lost.partition)
        self._verifying.discard(key)
        self.marks[key] = Mark(0)
        if lost.epoch is not None:
            self._adopted.setdefault(key, set()).add(lost.epoch)
        self.metrics.losses.labels(lost.topic, lost.kind).inc()
        if key not in self.rereading:
            self.metrics.rereading.labels(lost.topic).inc()
        self.rereading[key] = Rereading(lost.reason, time.monotonic(), time.time())
        log.warning(
            "%s: the log of %s/%d is not the one this consumer's position belongs to (%s); "
            "reading the partition again from its beginning",
            self.service,
            lost.topic,
            lost.partition,
            lost.reason,
        )

    def caught_up(self, high_watermark: HighWatermark) -> None:
        """Partitions read again that reached their end now (`high_watermark(topic,
        partition)` gives it, None while unknown)."""
        for key, reading in list(self.rereading.items()):
            high = high_watermark(*key)
            mark = self.marks.get(key)
            if high is None or mark is None or mark.next_offset < high:
                continue
            del self.rereading[key]
            self.metrics.rereading.labels(key[0]).dec()
            log.warning(
                "%s: %s/%d read again to its end (%d records in %.1f s)",
                self.service,
                key[0],
                key[1],
                reading.records,
                time.monotonic() - reading.since,
            )

    def status(self) -> list[dict[str, Any]]:
        """For /readyz: the partitions being read again, why and since when."""
        return [
            {
                "topic": topic,
                "partition": partition,
                "reason": reading.reason,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reading.since_wall)),
                "records_read_again": reading.records,
                "position": self.marks.get((topic, partition), Mark(0)).next_offset,
            }
            for (topic, partition), reading in sorted(self.rereading.items())
        ]
