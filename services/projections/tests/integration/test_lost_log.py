"""The projections consumer after a lost log and on what it passes over (SPEC §7): a partition
whose offsets go back is read again from its beginning, its stored position put back with it;
every record it passes over is counted and said in the log, with the reason."""

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from chassis.kafka.logwatch import EPOCH_HEADER, LogWatch, Mark
from projections.entrypoints.consumers import PositionSeeker, apply_batch
from projections.entrypoints.instruments import Instruments
from services.projections.tests.cohort import cohort
from services.projections.tests.conftest import Service
from services.projections.tests.history import envelopes_of

TOPIC = "crm.opportunity.events"


@dataclass(frozen=True)
class Rec:
    offset: int
    value: bytes
    epoch: str = "e1"
    partition: int = 0
    topic: str = TOPIC

    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]:
        return ((EPOCH_HEADER, self.epoch.encode()),)


@dataclass
class FakeConsumer:
    """What apply_batch asks of aiokafka's consumer."""

    high: int = 1000
    seeks: list[tuple[int, int]] = field(default_factory=list)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))

    def highwater(self, _: TopicPartition) -> int:
        return self.high

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, 0)}

    async def commit(self, _: Any) -> None:
        return None


def events() -> list[bytes]:
    return [orjson.dumps(e) for e in envelopes_of(*cohort().values())]


def counted(metrics: Instruments, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "oppstream_projection_events_total", {"outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
def consumer_of(service: Service) -> tuple[PositionSeeker, Instruments, FakeConsumer]:
    metrics = Instruments()
    fake = FakeConsumer()
    seeker = PositionSeeker(
        service.store, TOPIC, lambda: None, LogWatch("projections", metrics.log)
    )
    seeker.assigned = {TopicPartition(TOPIC, 0)}
    return seeker, metrics, fake


async def test_a_redelivered_record_is_passed_over_with_its_reason_in_the_log_and_the_counter(
    service: Service,
    consumer_of: tuple[PositionSeeker, Instruments, FakeConsumer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="projections.entrypoints.consumers")
    seeker, metrics, fake = consumer_of
    values = events()
    first = [Rec(i, v) for i, v in enumerate(values)]
    await apply_batch(service.store, seeker, metrics, fake, first)
    caplog.clear()

    # The same events again further on in the log (the relay republished them).
    again = [Rec(len(values) + i, v) for i, v in enumerate(values[:3])]
    await apply_batch(service.store, seeker, metrics, fake, again)

    assert counted(metrics, "duplicates") == 3
    assert "passed over 3 records (3 duplicates: a version already applied)" in caplog.text


async def test_offsets_that_go_back_read_the_partition_again_without_applying_anything_twice(
    service: Service, consumer_of: tuple[PositionSeeker, Instruments, FakeConsumer]
) -> None:
    seeker, metrics, fake = consumer_of
    values = events()
    await apply_batch(
        service.store, seeker, metrics, fake, [Rec(i, v) for i, v in enumerate(values)]
    )
    applied = counted(metrics, "applied")
    assert service.store.marks(TOPIC) == {0: Mark(len(values), "e1")}

    # The broker lost its log: the new one starts again at offset 0 with the republished
    # history under a new epoch, and already reaches further than the old one did.
    renewed = [Rec(i, v, "e2") for i, v in enumerate(values)]
    fake.high = len(values) + 5
    await apply_batch(service.store, seeker, metrics, fake, renewed[:5])
    assert fake.seeks == [(0, 0)]  # read again from the beginning; this batch dropped
    assert service.store.marks(TOPIC) == {0: Mark(0, None)}
    assert (
        metrics.registry.get_sample_value(
            "oppstream_log_losses_total", {"topic": TOPIC, "reason": "went_back"}
        )
        == 1
    )

    fake.high = len(values)
    await apply_batch(service.store, seeker, metrics, fake, renewed)
    assert counted(metrics, "applied") == applied  # nothing applied twice
    assert counted(metrics, "duplicates") == len(values)
    assert service.store.marks(TOPIC) == {0: Mark(len(values), "e2")}
    assert seeker.watch.status() == []  # read again to its end
