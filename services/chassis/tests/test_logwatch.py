"""A consumer tells a lost log from its own (chassis.kafka.logwatch): offsets that go back, a new
relay epoch, and no false alarm on redelivery, on its own seeks or after reading again."""

from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from chassis.kafka.logwatch import EPOCH_HEADER, LogMetrics, LogWatch, Mark

TOPIC = "crm.opportunity.events"


def UNKNOWN(topic: str, partition: int) -> int | None:  # noqa: N802 - reads as a constant
    """No fetch has told where the partition ends yet."""
    return None


@dataclass(frozen=True)
class Rec:
    offset: int
    epoch: str | None = "e1"
    partition: int = 0
    topic: str = TOPIC

    @property
    def headers(self) -> tuple[tuple[str, bytes], ...]:
        return () if self.epoch is None else ((EPOCH_HEADER, self.epoch.encode()),)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def watch(registry: CollectorRegistry) -> LogWatch:
    return LogWatch("test", LogMetrics.register(registry))


def losses(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value(
        "oppstream_log_losses_total", {"topic": TOPIC, "reason": reason}
    )
    return value or 0.0


def rereading(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("oppstream_log_rereading_partitions", {"topic": TOPIC}) or 0.0


def test_records_that_follow_the_stored_position_are_the_same_log(watch: LogWatch) -> None:
    watch.expect(TOPIC, 0, Mark(10, "e1"))
    assert watch.check([Rec(10), Rec(11), Rec(12)], UNKNOWN) == []


def test_a_fresh_partition_takes_whatever_comes(watch: LogWatch) -> None:
    watch.expect(TOPIC, 0, None)
    assert watch.check([Rec(0, "e7"), Rec(1, "e7")], UNKNOWN) == []


def test_offsets_that_go_back_mean_the_broker_lost_the_log(watch: LogWatch) -> None:
    watch.expect(TOPIC, 0, Mark(1500, "e1"))
    [lost] = watch.check([Rec(0), Rec(1)], UNKNOWN)
    assert (lost.partition, lost.offset) == (0, 0)
    assert "offsets went back" in lost.reason
    assert "1500" in lost.reason


def test_a_new_epoch_past_the_old_position_means_the_relay_started_over(watch: LogWatch) -> None:
    # The relay republished faster than the consumer looked: the new log already reaches
    # past the old position, so only the epoch shows the change.
    watch.expect(TOPIC, 0, Mark(40, "e1"))
    [lost] = watch.check([Rec(40, "e2")], UNKNOWN)
    assert "epoch e2" in lost.reason
    assert lost.epoch == "e2"


def test_only_the_partitions_with_evidence_are_lost(watch: LogWatch) -> None:
    watch.expect(TOPIC, 0, Mark(5, "e1"))
    watch.expect(TOPIC, 1, Mark(5, "e1"))
    found = watch.check([Rec(5, partition=0), Rec(0, partition=1)], UNKNOWN)
    assert [lost.partition for lost in found] == [1]


def test_records_without_an_epoch_never_show_one(watch: LogWatch) -> None:
    watch.expect(TOPIC, 0, Mark(3, "e1"))
    assert watch.check([Rec(3, None), Rec(4, None)], UNKNOWN) == []


def test_a_batch_read_again_after_a_failure_is_no_loss(watch: LogWatch) -> None:
    watch.expect(TOPIC, 0, Mark(10, "e1"))
    batch = [Rec(10), Rec(11)]
    assert watch.check(batch, UNKNOWN) == []
    # Not durable: the consumer seeks back to 10 without calling took().
    assert watch.check(batch, UNKNOWN) == []
    watch.took(batch)
    assert watch.check([Rec(10)], UNKNOWN) != []


def test_reading_again_adopts_the_new_epoch_and_the_old_records_before_it(
    watch: LogWatch, registry: CollectorRegistry
) -> None:
    watch.expect(TOPIC, 0, Mark(40, "e1"))
    [lost] = watch.check([Rec(40, "e2")], UNKNOWN)
    watch.restart(lost)
    assert losses(registry, "new_epoch") == 1
    assert rereading(registry) == 1
    # The new log may begin with records the relay sent before it noticed (old epoch),
    # then the history again under e2: no second loss.
    again = [Rec(0, "e1"), Rec(1, "e1"), Rec(2, "e2"), Rec(3, "e2")]
    assert watch.check(again, UNKNOWN) == []
    watch.took(again)
    assert watch.status()[0]["records_read_again"] == 4
    watch.caught_up(lambda *_: 4)
    assert watch.status() == []
    assert rereading(registry) == 0


def test_a_loss_is_said_in_the_log_and_in_readiness(
    watch: LogWatch, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    watch.expect(TOPIC, 3, Mark(9, "e1"))
    [lost] = watch.check([Rec(0, partition=3)], UNKNOWN)
    watch.restart(lost)
    assert losses(registry, "went_back") == 1
    assert "crm.opportunity.events/3" in caplog.text
    assert "offsets went back" in caplog.text
    [status] = watch.status()
    assert status["partition"] == 3
    assert "offsets went back" in status["reason"]


def test_a_partition_given_away_is_forgotten(watch: LogWatch, registry: CollectorRegistry) -> None:
    watch.expect(TOPIC, 0, Mark(9, "e1"))
    [lost] = watch.check([Rec(0)], UNKNOWN)
    watch.restart(lost)
    watch.forget(TOPIC, 0)
    assert watch.status() == []
    assert rereading(registry) == 0
    # Where the group's commit puts it when it comes back is never taken for a loss.
    assert watch.check([Rec(0)], UNKNOWN) == []


def test_a_log_that_ends_before_the_position_was_lost(watch: LogWatch) -> None:
    watch.expect(TOPIC, 0, Mark(1500, "e1"))
    [lost] = watch.check([Rec(1500)], lambda *_: 12)
    assert lost.kind == "ended"
    assert "ends at 12" in lost.reason


def test_where_the_groups_commits_put_a_consumer_is_no_loss_unless_the_log_shrank(
    registry: CollectorRegistry,
) -> None:
    watch = LogWatch("intake", LogMetrics.register(registry), own_positions=False)
    watch.took([Rec(0, None), Rec(1, None), Rec(2, None)])
    watch.forget(TOPIC, 0)
    # Another member's commit failed: the partition comes back behind where this one stood.
    assert watch.check([Rec(1, None)], lambda *_: 3) == []
    # The broker lost the log and the group its commits: the partition ends before it.
    [lost] = watch.check([Rec(0, None)], lambda *_: 1)
    assert lost.kind == "ended"


def test_an_assigned_partition_starts_at_the_record_before_its_mark_to_see_its_epoch(
    watch: LogWatch,
) -> None:
    assert watch.start_at(TOPIC, 0, Mark(2, "e1")) == 1
    assert watch.check([Rec(1, "e1")], UNKNOWN) == []  # the same log: nothing to do
    watch.took([Rec(1, "e1")])
    assert watch.marks[(TOPIC, 0)] == Mark(2, "e1")


def test_a_new_log_exactly_as_long_as_the_old_position_is_still_found(watch: LogWatch) -> None:
    # The republished history ends where the consumer stood: no record would come after it.
    assert watch.start_at(TOPIC, 0, Mark(2, "e1")) == 1
    [lost] = watch.check([Rec(1, "e2")], lambda *_: 2)
    assert lost.kind == "new_epoch"


def test_a_partition_without_a_mark_or_an_epoch_starts_where_it_stands(watch: LogWatch) -> None:
    assert watch.start_at(TOPIC, 0, None) == 0
    assert watch.start_at(TOPIC, 1, Mark(5, None)) == 5


def test_the_end_of_a_partition_another_consumer_reads_is_unknown_not_an_error() -> None:
    # One watch serves the opportunity service's two consumers (leads, commands): a partition
    # read again by one must not be asked of the other, which aiokafka refuses.
    from aiokafka import TopicPartition

    from chassis.kafka.consuming import high_watermark_of

    class Consumer:
        def assignment(self) -> set[TopicPartition]:
            return {TopicPartition("crm.leads.qualified", 0)}

        def highwater(self, tp: TopicPartition) -> int:
            assert tp in self.assignment(), "Partition is not assigned"
            return 7

    high = high_watermark_of(Consumer())
    assert high("crm.leads.qualified", 0) == 7
    assert high("crm.opportunity.commands", 0) is None


def test_a_partition_whose_log_ends_before_where_the_consumer_fetches_is_stranded(
    watch: LogWatch,
) -> None:
    # Tansu answers a fetch past the end with nothing, not "out of range": without this the
    # consumer would wait until the new log grew past it, then skip what lies below.
    ends = {(TOPIC, 0): 40, (TOPIC, 1): 3}
    [lost] = watch.stranded({(TOPIC, 0): 40, (TOPIC, 1): 1933}, lambda t, p: ends[(t, p)])
    assert (lost.partition, lost.kind) == (1, "ended")
    assert "ends at 3" in lost.reason
    assert watch.stranded({(TOPIC, 2): 7}, UNKNOWN) == []


def test_a_partition_sought_back_to_verify_its_epoch_in_a_shorter_log_is_stranded(
    watch: LogWatch,
) -> None:
    # The consumer stood at 3 and seeks to 2 to see that record's epoch again; the new log
    # holds one record: nothing comes back at 2, and the record at 0 must not be skipped.
    assert watch.start_at(TOPIC, 0, Mark(3, "old")) == 2
    [lost] = watch.stranded({(TOPIC, 0): 2}, lambda *_: 1)
    assert (lost.partition, lost.kind) == (0, "ended")
    assert watch.stranded({(TOPIC, 0): 2}, lambda *_: 3) == []
