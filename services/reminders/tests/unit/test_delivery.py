"""Exactly once in effect: redelivered events, restarts, failed and repeated publishes,
partition ownership, two schedulers on one store (SQLite and PostgreSQL)."""

import asyncio
import contextlib
import logging
from datetime import date
from uuid import uuid4

import pytest

from contracts import topics
from contracts.commands import CreateRenewalCommand, ReclaimCommand
from contracts.competitions import COMPETITION_PAYLOADS, competition_record_id
from contracts.customer_record import CUSTOMER_PAYLOADS
from contracts.targets import TARGET_PAYLOADS, target_id_for
from reminders.adapters.store import Store
from services.reminders.tests.helpers import DAY, T0, Harness, Opportunity, Record, kinds
from tests.support.principals import new_uscc


async def test_a_redelivered_event_changes_nothing(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reminders.application.intake")
    o = Opportunity("KA")
    create = o.create(T0)
    harness.feed(create, o.follow_up(T0 + 5 * DAY))
    again = Record(
        topics.OPPORTUNITY_EVENTS, 0, 0, o.id.encode(), create.model_dump_json().encode()
    )
    harness.redeliver([again, again])
    facts, _ = harness.store.facts(o.id) or pytest.fail("no facts")
    assert (facts.version, facts.last_progress_version) == (2, 2)
    assert await harness.at(T0 + 7 * DAY) == []
    assert kinds(await harness.at(T0 + 12 * DAY)) == ["follow_up"]
    outcomes = harness.metrics.events.collect()[0].samples
    assert {s.labels["outcome"]: s.value for s in outcomes if s.name.endswith("_total")} == {
        "applied": 2.0,
        "duplicate": 2.0,
    }
    assert "passed over 2 records (2 duplicate: a version already taken)" in caplog.text


async def test_events_of_an_unknown_opportunity_and_garbage_are_passed_over(
    harness: Harness,
) -> None:
    o = Opportunity("KA")
    o.create(T0)  # never delivered
    harness.feed(o.follow_up(T0 + DAY))
    harness.redeliver([Record(topics.OPPORTUNITY_EVENTS, 1, 7, b"k", b"not json")])
    assert harness.store.facts(o.id) is None
    assert harness.store.positions(topics.OPPORTUNITY_EVENTS, [1]) == {1: 8}


async def test_a_customer_records_events_are_counted_apart_and_passed_over_quietly(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reminders.application.intake")
    o, record_id, uscc = Opportunity("KA"), str(uuid4()), new_uscc()
    customer = Opportunity(opportunity_id=record_id)  # the envelopes of another aggregate
    profile = {"uscc": uscc, "name": "ACME 有限公司", "tier": "KA", "ownership": "PRIVATE"}
    recorded = customer.event("CustomerRecorded", T0, uscc=uscc, customer=profile)
    person = {"name": "王总", "role": "decision_maker"}
    added = customer.event(
        "CustomerKeyPersonAdded", T0, uscc=uscc, person_id="p-1", person=person, opportunity_id=o.id
    )
    for envelope in (recorded, added):
        CUSTOMER_PAYLOADS[envelope.event_type].model_validate(envelope.payload)

    harness.feed(o.create(T0), recorded, added, partition=4)

    assert harness.store.facts(record_id) is None
    facts, _ = harness.store.facts(o.id) or pytest.fail("no facts")
    assert facts.version == 1
    assert harness.store.positions(topics.OPPORTUNITY_EVENTS, [4]) == {4: 3}
    outcomes = harness.metrics.events.collect()[0].samples
    assert {s.labels["outcome"]: s.value for s in outcomes if s.name.endswith("_total")} == {
        "applied": 1.0,
        "customer_record": 2.0,
    }
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "2 customer_record: an event of a customer record, which has no timers" in caplog.text


async def test_targets_and_competitions_events_are_counted_apart_and_passed_over_quietly(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reminders.application.intake")
    o = Opportunity("KA")
    key = {"period": "2026-Q4", "scope": "team", "scope_id": "east", "metric": "won_amount"}
    target_id = target_id_for(*key.values())
    target = Opportunity(opportunity_id=target_id)  # the envelopes of another aggregate
    set_ = target.event("TargetSet", T0, **key, value="100000", team_id=None)
    adjusted = target.event(
        "TargetAdjusted", T0 + DAY, **key, value="120000", previous_value="100000"
    )
    competition = Opportunity(opportunity_id=competition_record_id("q4-sprint"))
    defined = competition.event(
        "CompetitionDefined",
        T0,
        competition_id="q4-sprint",
        name="Q4 sprint",
        metric="won_count",
        to="2026-12-31T16:00:00Z",
        **{"from": "2026-09-30T16:00:00Z"},
    )
    for envelope in (set_, adjusted):
        TARGET_PAYLOADS[envelope.event_type].model_validate(envelope.payload)
    COMPETITION_PAYLOADS[defined.event_type].model_validate(defined.payload)

    harness.feed(o.create(T0), set_, adjusted, defined, partition=3)

    assert harness.store.facts(target_id) is None
    assert harness.store.facts(competition_record_id("q4-sprint")) is None
    assert harness.store.positions(topics.OPPORTUNITY_EVENTS, [3]) == {3: 4}
    outcomes = harness.metrics.events.collect()[0].samples
    assert {s.labels["outcome"]: s.value for s in outcomes if s.name.endswith("_total")} == {
        "applied": 1.0,
        "target": 2.0,
        "competition": 1.0,
    }
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "2 target: an event of a target, which has no timers" in caplog.text
    assert "1 competition: an event of a competition, which has no timers" in caplog.text


async def test_positions_are_stored_with_the_facts(harness: Harness) -> None:
    a, b = Opportunity("KA"), Opportunity("SMB")
    harness.feed(a.create(T0), a.follow_up(T0), partition=2)
    harness.feed(b.create(T0), partition=5)
    assert harness.store.positions(topics.OPPORTUNITY_EVENTS, range(6)) == {2: 2, 5: 1}


async def test_an_unknown_event_type_only_moves_the_version(harness: Harness) -> None:
    o = Opportunity("SMB")
    harness.feed(o.create(T0), o.event("SomethingNew", T0 + DAY, whatever=1))
    facts, _ = harness.store.facts(o.id) or pytest.fail("no facts")
    assert facts.version == 2
    assert kinds(await harness.at(T0 + 3 * DAY)) == ["follow_up"]


async def test_a_restart_never_fires_a_timer_again(harness: Harness) -> None:
    o = Opportunity("KA")
    harness.feed(o.create(T0))
    assert kinds(await harness.at(T0 + 8 * DAY)) == ["follow_up"]
    harness.new_scheduler()
    harness.feed(o.info(T0 + 9 * DAY))  # recomputes the timers: the follow-up is overdue
    assert await harness.at(T0 + 9 * DAY) == []
    assert kinds(await harness.at(T0 + 14 * DAY)) == ["stale_warning"]


async def test_a_failed_publish_keeps_the_reminder_and_sends_it_later_with_its_id(
    harness: Harness,
) -> None:
    o = Opportunity("SMB")
    harness.feed(o.create(T0))
    harness.clock.set(T0 + 3 * DAY)
    harness.publisher.failing = True
    with pytest.raises(ConnectionError):
        await harness.scheduler.round()
    assert harness.store.count_pending() == 1
    harness.publisher.failing = False
    [reminder] = await harness.tick()
    assert reminder.kind.value == "follow_up"
    assert harness.store.count_pending() == 0
    assert await harness.at(T0 + 4 * DAY) == []


async def test_a_crash_between_publish_and_acknowledging_sends_the_same_bytes_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    o = Opportunity("KA")
    harness.clock.set(T0 + 31 * DAY)
    harness.feed(o.create(T0))

    def crash(*_: object) -> None:
        raise RuntimeError("killed before taking the rows out of the outbox (test)")

    with monkeypatch.context() as patched:
        patched.setattr(harness.store, "sent", crash)
        with pytest.raises(RuntimeError):
            await harness.scheduler.round()
    harness.new_scheduler()  # the restart
    await harness.tick()
    first, second = harness.publisher.sent[:2], harness.publisher.sent[2:]
    assert {m.topic for m in first} == {topics.REMINDERS, topics.OPPORTUNITY_COMMANDS}
    assert second == first
    assert harness.store.count_pending() == 0


async def test_only_the_timers_of_owned_partitions_fire(harness: Harness) -> None:
    mine, theirs = Opportunity("SMB"), Opportunity("SMB")
    harness.feed(mine.create(T0), partition=1)
    harness.feed(theirs.create(T0), partition=4)
    harness.ownership.set([0, 1, 2])
    assert [r.opportunity_id for r in await harness.at(T0 + 3 * DAY)] == [mine.id]
    harness.ownership.set([3, 4, 5])  # a rebalance gives this copy the other partitions
    assert [r.opportunity_id for r in await harness.at(T0 + 3 * DAY)] == [theirs.id]


async def test_two_schedulers_owning_the_same_partitions_never_fire_a_timer_twice(
    store: Store, harness: Harness
) -> None:
    other = Harness(store, harness.planner, harness.clock, harness.publisher, batch=7)
    harness.batch = 5
    harness.new_scheduler()
    created = [Opportunity("SMB") for _ in range(60)]
    harness.feed(*(o.create(T0) for o in created))
    harness.clock.set(T0 + 3 * DAY)
    await asyncio.gather(harness.tick(), other.tick())
    sent = harness.publisher.reminders()
    assert {r.opportunity_id for r in sent} == {o.id for o in created}
    by_opportunity: dict[str, set[str]] = {}
    for r in sent:
        by_opportunity.setdefault(r.opportunity_id, set()).add(r.reminder_id)
    assert all(len(ids) == 1 for ids in by_opportunity.values())


async def test_rounds_take_at_most_a_batch_and_go_on_until_nothing_is_due(
    harness: Harness,
) -> None:
    harness.batch = 10
    harness.new_scheduler()
    harness.feed(*(Opportunity("SMB").create(T0) for _ in range(35)))
    harness.clock.set(T0 + 3 * DAY)
    assert await harness.scheduler.round() is True
    await harness.scheduler.settle()  # a busy round leaves its publish running
    assert len(harness.publisher.reminders()) == 10
    assert len(await harness.tick()) == 25


async def test_the_running_scheduler_fires_on_its_own_within_a_tick(harness: Harness) -> None:
    o = Opportunity("SMB")
    harness.feed(o.create(T0))
    running = asyncio.create_task(harness.scheduler.run())
    try:
        harness.clock.set(T0 + 3 * DAY)  # nobody wakes it: the next tick finds the timer
        deadline = asyncio.get_running_loop().time() + 5
        while not harness.publisher.reminders():
            assert asyncio.get_running_loop().time() < deadline, "no reminder within 5 s"
            await asyncio.sleep(0.01)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert kinds(harness.publisher.reminders()) == ["follow_up"]


async def test_read_again_an_event_after_a_missing_version_waits_for_the_versions_between(
    harness: Harness,
) -> None:
    # The head of a new log can hold events the relay sent before it found the old log lost;
    # the history it publishes again brings every version in order.
    o = Opportunity("KA")
    create, first, second = o.create(T0), o.follow_up(T0 + DAY), o.follow_up(T0 + 2 * DAY)
    harness.feed(create, partition=0)
    reading_again = frozenset({0})
    harness.intake.apply([harness.record(second, 0)], reading_again)
    facts, _ = harness.store.facts(o.id) or pytest.fail("no facts")
    assert facts.version == 1
    harness.intake.apply([harness.record(first, 0), harness.record(second, 0)], reading_again)
    facts, _ = harness.store.facts(o.id) or pytest.fail("no facts")
    assert (facts.version, facts.last_progress_version) == (3, 3)
    outcomes = harness.metrics.events.collect()[0].samples
    assert {s.labels["outcome"]: s.value for s in outcomes if s.name.endswith("_total")} == {
        "applied": 3.0,
        "gap": 1.0,
    }


async def test_after_the_broker_lost_its_log_the_commands_still_wanted_are_sent_again(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    stale, reclaimed, progressed = Opportunity("KA"), Opportunity("KA"), Opportunity("KA")
    won = Opportunity("KA", stage="signing")
    end = date(2026, 4, 30)  # the renewal is due 90 days before: in the first tick
    harness.feed(*(o.create(T0) for o in (stale, reclaimed, progressed)))
    harness.feed(won.create(T0), won.win(T0 + DAY, end))
    await harness.at(T0 + 30 * DAY)
    before = harness.publisher.commands()
    assert sorted(type(c).__name__ for c in before) == [
        "CreateRenewalCommand",
        *["ReclaimCommand"] * 3,
    ]
    harness.feed(reclaimed.reclaim(T0 + 30 * DAY, command_id="c-1"))
    harness.feed(progressed.advance("needs_confirmed", T0 + 30 * DAY))
    reminders = len(harness.publisher.reminders())

    harness.publisher.wipe()
    with caplog.at_level(logging.WARNING):
        await harness.scheduler.check_log()
        await harness.tick()

    again = harness.publisher.commands()[len(before) :]
    assert {(type(c), c.opportunity_id) for c in again} == {
        (ReclaimCommand, stale.id),
        (CreateRenewalCommand, won.id),
    }
    assert {c.command_id for c in again} <= {c.command_id for c in before}
    assert len(harness.publisher.reminders()) == reminders  # people were told once
    assert harness.metrics.sent_again._value.get() == 2
    assert "2 reclaim and renewal commands that may not have been taken" in caplog.text
    assert harness.store.count_pending() == 0
    await harness.scheduler.check_log()
    assert harness.publisher.commands()[len(before) + 2 :] == []  # the new log is whole


async def test_a_broker_that_cannot_say_where_its_log_ends_does_not_stop_the_scheduler(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = []

    async def unreachable(_: object) -> list[str]:
        asked.append(True)
        raise ConnectionError("the broker is down (test)")

    monkeypatch.setattr(harness.publisher, "lost", unreachable)
    running = asyncio.create_task(harness.scheduler.run())
    try:
        for _ in range(200):
            if len(asked) >= 2:
                break
            await asyncio.sleep(0.01)
        assert len(asked) >= 2, "the scheduler went on asking after the failure"
        assert not running.done()
        assert harness.scheduler.last_error == "ConnectionError: the broker is down (test)"
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
