"""Delivery to a local HTTP sink, on SQLite and PostgreSQL: the webhook signature verifies
with the secret, a sink failing twice gets the reminder three times under one key and it is
delivered once, and a sink that hangs delays neither firing nor publication."""

import asyncio
import hashlib
import hmac
import logging
import time

import orjson
import pytest

from contracts import topics
from contracts.rules import Rulebook
from reminders.adapters.store import Store
from reminders.domain.delivery import DELIVERED, PARKED, PENDING
from reminders.metrics import Metrics
from services.reminders.tests.delivery_support import (
    SECRET,
    a_follow_up_fired,
    deliveries_of,
    harness_on,
    rounds_until,
    webhook,
    with_delivery,
    worker_on,
)
from services.reminders.tests.helpers import DAY, Opportunity
from services.reminders.tests.sink import HANG, running_sink
from tests.support.polling import poll


async def test_a_webhook_gets_the_published_bytes_signed_with_the_channel_secret(
    store: Store, rules: Rulebook
) -> None:
    with running_sink() as sink:
        rules = with_delivery(rules, webhook("east-hook", sink.url("/hook")))
        harness = harness_on(store, rules)
        reminder_id = await a_follow_up_fired(harness)
        worker = worker_on(store, rules)
        await rounds_until(worker, lambda: sink.at("/hook"), "a request at the sink")

        [got] = sink.at("/hook")
        [published] = [m.value for m in harness.publisher.sent if m.topic == topics.REMINDERS]
        assert got.body == published
        expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(got.headers["X-Oppstream-Signature"], f"sha256={expected}")
        assert got.headers["Idempotency-Key"] == reminder_id
        assert orjson.loads(got.body)["reminder_id"] == reminder_id
        [row] = deliveries_of(store, reminder_id)
        assert (row["channel_id"], row["status"], row["attempts"]) == ("east-hook", DELIVERED, 1)

        assert await worker.round() == 0
        assert len(sink.at("/hook")) == 1


async def test_a_sink_failing_twice_gets_it_three_times_under_one_key_and_it_is_delivered_once(
    store: Store, rules: Rulebook
) -> None:
    with running_sink(flaky=[500, 500, 200]) as sink:
        rules = with_delivery(rules, webhook("flaky", sink.url("/flaky")), attempts=5)
        harness = harness_on(store, rules)
        reminder_id = await a_follow_up_fired(harness)
        metrics = Metrics()
        worker = worker_on(store, rules, metrics)
        await rounds_until(
            worker,
            lambda: deliveries_of(store, reminder_id)[0]["status"] == DELIVERED,
            "the delivery marked delivered",
        )
        for _ in range(3):
            await worker.round()

        received = sink.at("/flaky")
        assert [r.headers["Idempotency-Key"] for r in received] == [reminder_id] * 3
        assert len({r.body for r in received}) == 1
        [row] = deliveries_of(store, reminder_id)
        assert (row["status"], row["attempts"]) == (DELIVERED, 3)
        counted = metrics.deliveries
        assert counted.labels("flaky", "failed")._value.get() == 2
        assert counted.labels("flaky", "delivered")._value.get() == 1


async def test_a_hanging_sink_delays_neither_firing_nor_publication(
    store: Store, rules: Rulebook
) -> None:
    with running_sink(slow=[HANG, HANG]) as sink:
        rules = with_delivery(rules, webhook("slow", sink.url("/slow")), timeout="5s")
        harness = harness_on(store, rules)
        first = await a_follow_up_fired(harness)
        worker = worker_on(store, rules)
        sending = asyncio.create_task(worker.round())
        try:
            await asyncio.to_thread(poll, lambda: sink.at("/slow"), bool, 10.0)
            later = Opportunity("KA")
            harness.feed(later.create(harness.clock()))
            started = time.monotonic()
            fired = await harness.at(harness.clock() + 7 * DAY)
            elapsed = time.monotonic() - started
            assert not sending.done(), "the sink answered: the test proves nothing"
        finally:
            sink.release.set()
            await sending
        [now_due] = [r for r in fired if r.opportunity_id == later.id]
        assert elapsed < 1.0
        assert now_due.reminder_id in {r.reminder_id for r in harness.publisher.reminders()}
        [row] = deliveries_of(store, now_due.reminder_id)
        assert row["status"] == PENDING
        assert deliveries_of(store, first)[0]["attempts"] == 1


async def test_a_delivery_whose_channel_left_the_rules_is_parked_unsent(
    store: Store, rules: Rulebook
) -> None:
    with running_sink() as sink:
        before = with_delivery(rules, webhook("gone", sink.url("/gone")))
        reminder_id = await a_follow_up_fired(harness_on(store, before))
        after = with_delivery(rules, webhook("other", sink.url("/other")))
        metrics = Metrics()
        assert await worker_on(store, after, metrics).round() == 1
        [row] = deliveries_of(store, reminder_id)
        assert (row["status"], row["last_error"]) == (
            PARKED,
            "the channel is no longer in the rules file",
        )
        assert sink.received == []
        assert metrics.deliveries.labels("gone", "parked")._value.get() == 1


async def test_failures_are_logged_without_the_url_token_or_the_secret(
    store: Store, rules: Rulebook, caplog: pytest.LogCaptureFixture
) -> None:
    with running_sink() as sink:
        sink.after["/down/path-token"] = 503
        url = sink.url("/down/path-token?access_token=token-of-the-robot")
        channel = {"id": "ding", "kind": "dingtalk", "url": url, "secret": SECRET}
        rules = with_delivery(rules, channel, attempts=2)
        reminder_id = await a_follow_up_fired(harness_on(store, rules))
        worker = worker_on(store, rules)
        with caplog.at_level(logging.DEBUG):
            await rounds_until(
                worker,
                lambda: deliveries_of(store, reminder_id)[0]["status"] == PARKED,
                "the delivery parked",
            )
        assert "HTTP 503" in caplog.text
        [row] = deliveries_of(store, reminder_id)
        assert f"127.0.0.1:{sink.port}" in caplog.text
        for secret in ("token-of-the-robot", "path-token", SECRET):
            assert secret not in caplog.text
            assert secret not in (row["last_error"] or "")
        assert "access_token=token-of-the-robot" in sink.at("/down/path-token")[0].path
