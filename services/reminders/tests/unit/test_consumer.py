"""The consumer's handler on FastStream's in-memory broker (TestKafkaBroker): a record of
`crm.opportunity.events` in, the opportunity's facts and the partition's position stored; a
customer record's event passed over, its position stored all the same."""

from typing import Any

import pytest
from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.message import FakeConsumer

from chassis.kafka.logwatch import LogWatch
from contracts import topics
from reminders.adapters.store import Store
from reminders.application.intake import EventIntake
from reminders.application.ownership import Ownership
from reminders.domain.clock import ManualClock
from reminders.entrypoints.consumers import Rebalance, build_consumer
from reminders.metrics import Metrics
from services.reminders.tests.helpers import DAY, T0, Harness, Opportunity
from tests.support.principals import new_uscc


async def test_a_published_event_is_taken_into_the_facts(
    harness: Harness, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-memory consumer's commit takes no offsets; aiokafka's (what the handler calls,
    # one offset per partition of the batch) does.
    committed: list[dict[TopicPartition, int]] = []

    async def commit(_: Any, offsets: dict[TopicPartition, int]) -> None:
        committed.append(offsets)

    monkeypatch.setattr(FakeConsumer, "commit", commit)
    metrics, woken = Metrics(), []
    rebalance = Rebalance(store, Ownership(), lambda: None, LogWatch("reminders", metrics.log))
    intake = EventIntake(store, harness.planner, ManualClock(T0 + 40 * DAY), metrics)
    broker = KafkaBroker()
    broker.include_router(
        build_consumer(intake, rebalance, lambda: woken.append(True), "reminders", 10, 10_000)[0]
    )
    o = Opportunity("KA")
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(
            o.create(T0).model_dump_json().encode(),
            topic=topics.OPPORTUNITY_EVENTS,
            key=o.id.encode(),
            partition=3,
        )
    facts, next_due_at = store.facts(o.id) or pytest.fail("no facts stored")
    assert (facts.version, facts.partition, facts.tier) == (1, 3, "KA")
    assert store.positions(topics.OPPORTUNITY_EVENTS, [3]) == {3: 1}
    # Forty days after creation every rung is overdue: the scheduler is woken at once.
    assert next_due_at is not None
    assert next_due_at <= T0 + 40 * DAY
    assert woken == [True]
    assert committed == [{TopicPartition(topics.OPPORTUNITY_EVENTS, 3): 1}]


async def test_a_customer_records_event_is_passed_over_with_its_position_stored(
    harness: Harness, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def commit(_: Any, offsets: dict[TopicPartition, int]) -> None:
        pass

    monkeypatch.setattr(FakeConsumer, "commit", commit)
    metrics, woken = Metrics(), []
    rebalance = Rebalance(store, Ownership(), lambda: None, LogWatch("reminders", metrics.log))
    intake = EventIntake(store, harness.planner, ManualClock(T0 + 40 * DAY), metrics)
    broker = KafkaBroker()
    broker.include_router(
        build_consumer(intake, rebalance, lambda: woken.append(True), "reminders", 10, 10_000)[0]
    )
    record = Opportunity()  # a customer record: another aggregate on the same topic
    uscc = new_uscc()
    profile = {"uscc": uscc, "name": "ACME 有限公司", "tier": "KA", "ownership": "SOE"}
    recorded = record.event("CustomerRecorded", T0, uscc=uscc, customer=profile)
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(
            recorded.model_dump_json().encode(),
            topic=topics.OPPORTUNITY_EVENTS,
            key=record.id.encode(),
            partition=1,
        )
    assert store.facts(record.id) is None
    assert store.positions(topics.OPPORTUNITY_EVENTS, [1]) == {1: 1}
    outcomes = metrics.events.collect()[0].samples
    assert {s.labels["outcome"]: s.value for s in outcomes if s.name.endswith("_total")} == {
        "customer_record": 1.0
    }
    assert woken == []
