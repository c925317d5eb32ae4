"""The delivery worker: sends the due deliveries of fired reminders to their channels, at
least once, and records each answer.

A round takes the due deliveries (each counted as an attempt and held for the request's
timeout and a margin), sends them side by side, then records in one transaction: delivered
(a 2xx the vendor did not refuse: never sent again), failed (tried again after
first_backoff·2^(attempt-1) with jitter) or parked (after the rules' attempts). A crash
between a send and its record leaves the delivery held; once the hold ends it is sent once
more, with the same Idempotency-Key. Firing never waits for any of this: the deliveries
were written with the firing and are sent from here."""

import asyncio
import logging
import random
from datetime import datetime
from zoneinfo import ZoneInfo

from chassis.retrying import Backoff
from contracts.delivery import Delivery
from reminders.application.ports import Attempted, DeliveryStore, DueDelivery, Sender
from reminders.domain.clock import Clock
from reminders.domain.delivery import (
    DELIVERED,
    LEASE_MARGIN,
    PARKED,
    PENDING,
    backoff,
    refusal,
    request_for,
)
from reminders.metrics import Metrics

log = logging.getLogger(__name__)

BATCH = 50


class DeliveryWorker:
    def __init__(
        self,
        store: DeliveryStore,
        sender: Sender,
        rules: Delivery,
        clock: Clock,
        metrics: Metrics,
        zone: ZoneInfo,
        tick: float,
        rng: random.Random | None = None,
    ) -> None:
        self._store, self._sender, self._rules = store, sender, rules
        self._clock, self._metrics, self._zone, self._tick = clock, metrics, zone, tick
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._wake = asyncio.Event()
        self.last_error: str | None = None

    def wake(self) -> None:
        """A delivery may be due now (one was retried)."""
        self._wake.set()

    async def run(self) -> None:
        """Rounds until cancelled; a round the store failed is tried again with backoff."""
        waiting = Backoff()
        while True:
            try:
                sent = await self.round()
                self.last_error = None
                waiting.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: the deliveries stay pending
                self.last_error = type(exc).__name__
                await waiting.wait("delivery", self.last_error)
                continue
            if sent < BATCH:
                await self._pause()

    async def round(self) -> int:
        """Send what is due now and record the answers; how many were sent."""
        now = self._clock()
        held_until = now + self._rules.timeout + LEASE_MARGIN
        due = await asyncio.to_thread(self._store.take_due, now, held_until, BATCH)
        if not due:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(d) for d in due))
        await asyncio.to_thread(self._store.attempted, outcomes)
        for outcome, delivery in zip(outcomes, due, strict=True):
            label = {DELIVERED: "delivered", PARKED: "parked"}.get(outcome.status, "failed")
            self._metrics.deliveries.labels(delivery.channel_id, label).inc()
        return len(due)

    async def _attempt(self, delivery: DueDelivery) -> Attempted:
        channel = self._rules.channel(delivery.channel_id)
        if channel is None:
            return self._failed(delivery, "the channel is no longer in the rules file", park=True)
        request = request_for(channel, delivery.reminder, self._clock(), self._zone)
        try:
            async with asyncio.timeout(self._rules.timeout.total_seconds()):
                status, body = await self._sender.send(request)
        except Exception as exc:  # no answer; its text may quote the URL and its token
            return self._failed(delivery, f"no answer ({type(exc).__name__})")
        refused = refusal(channel.kind, status, body)
        if refused is not None:
            return self._failed(delivery, refused)
        return Attempted(delivery.delivery_id, DELIVERED, self._clock())

    def _failed(self, delivery: DueDelivery, error: str, park: bool = False) -> Attempted:
        now: datetime = self._clock()
        if park or delivery.attempt >= self._rules.attempts:
            log.warning(
                "delivery %s to channel %s parked after attempt %d: %s",
                delivery.delivery_id,
                delivery.channel_id,
                delivery.attempt,
                error,
            )
            return Attempted(delivery.delivery_id, PARKED, now, error)
        wait = backoff(self._rules.first_backoff, delivery.attempt, self._rng.random())
        log.info(
            "delivery %s to channel %s failed (attempt %d): %s; again in %.1f s",
            delivery.delivery_id,
            delivery.channel_id,
            delivery.attempt,
            error,
            wait.total_seconds(),
        )
        return Attempted(delivery.delivery_id, PENDING, now, error, now + wait)

    async def _pause(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self._tick)
        except TimeoutError:
            pass
        self._wake.clear()
