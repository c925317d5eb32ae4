"""The consumer's handler on FastStream's in-memory broker (TestKafkaBroker): a record of
`crm.opportunity.events` in, the opportunity's facts and the partition's position stored."""

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
