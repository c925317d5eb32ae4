"""What the delivery tests share: rules with channels to a local sink, reminders fired into
a store, a delivery worker on the real clock, and rounds of it until something holds."""

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from contracts.delivery import Delivery
from contracts.rules import Rulebook
from reminders.adapters.channels import HttpSender
from reminders.adapters.store import Store
from reminders.adapters.system_clock import system_clock
from reminders.application.delivery import DeliveryWorker
from reminders.domain.clock import ManualClock
from reminders.domain.timers import Planner, managers_by_team
from reminders.metrics import Metrics
from services.reminders.tests.helpers import DAY, SHANGHAI, T0, Harness, Opportunity
from tests.support.principals import PRINCIPALS

SECRET = "sink-secret-0123456789"


def webhook(channel_id: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": channel_id, "kind": "webhook", "url": url, "secret": SECRET, **extra}


def with_delivery(rules: Rulebook, *channels: dict[str, Any], **settings: Any) -> Rulebook:
    delivery = Delivery.model_validate(
        {"attempts": 3, "first_backoff": "0.01s", "timeout": "2s", **settings, "channels": channels}
    )
    return rules.model_copy(update={"delivery": delivery})


def harness_on(store: Store, rules: Rulebook) -> Harness:
    planner = Planner(rules, SHANGHAI, managers_by_team(PRINCIPALS.all))
    return Harness(store, planner, ManualClock(T0))


async def a_follow_up_fired(harness: Harness, **opportunity: Any) -> str:
    """An opportunity created at T0 whose follow-up fires a week later: its reminder id."""
    o = Opportunity("KA", **opportunity)
    harness.feed(o.create(harness.clock()))
    [reminder] = await harness.at(harness.clock() + 7 * DAY)
    return reminder.reminder_id


def worker_on(store: Store, rules: Rulebook, metrics: Metrics | None = None) -> DeliveryWorker:
    sender = HttpSender(rules.delivery.timeout.total_seconds())
    return DeliveryWorker(
        store,
        sender,
        rules.delivery,
        system_clock,
        metrics or Metrics(),
        SHANGHAI,
        0.02,
        random.Random(7),
    )


async def rounds_until(
    worker: DeliveryWorker, holds: Callable[[], object], what: str, seconds: float = 20.0
) -> None:
    """Worker rounds until `holds()` (asked after each), failing after `seconds`."""
    end = time.monotonic() + seconds
    while not holds():
        if time.monotonic() > end:
            pytest.fail(f"not within {seconds} s: {what}")
        if not await worker.round():
            await asyncio.sleep(0.01)


def deliveries_of(store: Store, reminder_id: str) -> list[dict[str, Any]]:
    return [d for d in store.deliveries(None, None, None, 500) if d["reminder_id"] == reminder_id]
