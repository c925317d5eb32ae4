"""Crashes and copies, with real processes and the real broker: `kill -9` while reminders are
being published, then a restart, leaves each due reminder on the topic under one
reminder_id; two copies sharing the PostgreSQL database fire every timer exactly once."""

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from contracts import topics
from contracts.envelope import Envelope
from contracts.reminders import Reminder
from reminders.adapters.schema import fired as log
from reminders.adapters.schema import outbox
from reminders.adapters.store import Store
from services.reminders.tests.helpers import Opportunity
from services.reminders.tests.processes import reminders_env, reminders_of, start_reminders
from tests.support.kafka import TestBroker
from tests.support.polling import wait_until
from tests.support.postgres import fresh_database
from tests.support.topics import end_offsets

pytestmark = pytest.mark.slow

OPPORTUNITIES = 1500


def stale_smb_creations(count: int) -> list[Envelope]:
    """SMB opportunities created 5 days ago: each has exactly one timer due, a follow-up."""
    at = datetime.now(UTC) - timedelta(days=5)
    return [Opportunity("SMB").create(at) for _ in range(count)]


def publish_events(bootstrap: str, envelopes: list[Envelope]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            sent = [
                await producer.send(
                    topics.OPPORTUNITY_EVENTS,
                    e.model_dump_json().encode(),
                    key=e.opportunity_id.encode(),
                )
                for e in envelopes
            ]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(send())


def assert_one_reminder_id_each(found: list[Reminder], expected: set[str]) -> None:
    ids: dict[str, set[str]] = defaultdict(set)
    for reminder in found:
        ids[reminder.opportunity_id].add(reminder.reminder_id)
        assert reminder.kind.value == "follow_up"
    assert set(ids) == expected
    doubled = {oid: rids for oid, rids in ids.items() if len(rids) > 1}
    assert doubled == {}, f"{len(doubled)} opportunities with two different reminder ids"


def test_kill_9_while_publishing_loses_and_doubles_no_reminder(
    kafka: TestBroker, tmp_path: Path
) -> None:
    creations = stale_smb_creations(OPPORTUNITIES)
    expected = {e.opportunity_id for e in creations}
    start = end_offsets(kafka.bootstrap, topics.REMINDERS)
    db = f"sqlite:///{tmp_path}/reminders.db"
    # Small rounds: the kill lands between the fire, publish and mark steps of some round.
    env = reminders_env(tmp_path, kafka, db, group=f"crash-{uuid4().hex[:8]}", reminders_batch="5")
    first = start_reminders(env, tmp_path)  # creates the topics first
    try:
        publish_events(kafka.bootstrap, creations)
        reminders_of(kafka.bootstrap, start, 1, *expected)
    finally:
        first.kill_hard()
    store = Store(db)
    with store.engine.connect() as conn:
        fired = conn.execute(sa.select(sa.func.count()).select_from(log)).scalar_one()
        pending = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
    sent = fired - pending
    store.close()
    assert sent < OPPORTUNITIES, "the kill came after everything was sent: nothing was tested"

    second = start_reminders(env, tmp_path)
    try:
        found = reminders_of(kafka.bootstrap, start, OPPORTUNITIES, *expected, deadline=120)
    finally:
        second.stop()
    assert_one_reminder_id_each(found, expected)
    print(
        f"at the kill: {fired} fired, {sent} acknowledged; {len(found)} messages for {len(expected)}"
    )


@pytest.mark.postgres
def test_two_copies_on_one_database_fire_every_timer_exactly_once(
    kafka: TestBroker, tmp_path: Path
) -> None:
    creations = stale_smb_creations(OPPORTUNITIES)
    expected = {e.opportunity_id for e in creations}
    start = end_offsets(kafka.bootstrap, topics.REMINDERS)
    with fresh_database("oppstream_reminders_copies") as url:
        env = reminders_env(
            tmp_path, kafka, url, group=f"copies-{uuid4().hex[:8]}", reminders_batch="20"
        )
        copies = [start_reminders(env, tmp_path / name) for name in ("a", "b")]
        try:
            publish_events(kafka.bootstrap, creations)
            found = reminders_of(kafka.bootstrap, start, OPPORTUNITIES, *expected, deadline=120)
            fired_by_copy = [_fired(copy.url) for copy in copies]
        finally:
            for copy in copies:
                copy.stop()
    assert_one_reminder_id_each(found, expected)
    repeats = [rid for rid, n in Counter(r.reminder_id for r in found).items() if n > 1]
    assert repeats == []
    assert all(n > 0 for n in fired_by_copy), f"one copy did all the work: {fired_by_copy}"


def _fired(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("oppstream_reminders_fired_total{")
    )


def test_a_fresh_database_rebuilds_the_timers_from_the_beginning_of_the_topic(
    kafka: TestBroker, tmp_path: Path
) -> None:
    creations = stale_smb_creations(20)
    expected = {e.opportunity_id for e in creations}
    start = end_offsets(kafka.bootstrap, topics.REMINDERS)
    group = f"rebuild-{uuid4().hex[:8]}"
    first_db, second_db = f"sqlite:///{tmp_path}/first.db", f"sqlite:///{tmp_path}/second.db"
    first = start_reminders(reminders_env(tmp_path, kafka, first_db, group), tmp_path / "a")
    try:
        publish_events(kafka.bootstrap, creations)
        before = reminders_of(kafka.bootstrap, start, len(expected), *expected)
    finally:
        first.stop()
    middle = end_offsets(kafka.bootstrap, topics.REMINDERS)
    # Same group, whose committed offsets are past these events; a new, empty database.
    second = start_reminders(reminders_env(tmp_path, kafka, second_db, group), tmp_path / "b")
    try:
        store = Store(second_db)
        wait_until(
            lambda: all(store.facts(oid) is not None for oid in expected),
            60,
            "the second database knows every opportunity",
        )
        store.close()
        # Knowing nothing of what the first one sent, it sends the same reminders again:
        # the same ids, which the topic's consumers drop as repeats.
        after = reminders_of(kafka.bootstrap, middle, len(expected), *expected)
    finally:
        second.stop()
    assert {r.reminder_id for r in after} == {r.reminder_id for r in before}
