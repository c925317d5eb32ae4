"""The relay: recorded events → Kafka, in per-opportunity order, at least once.

It reads the notification log after its stored position, publishes each event's envelope to
`crm.opportunity.events` (and a won one also to `crm.opportunity.won`), and only after the
broker acknowledged everything stores the new position. A crash in between republishes the
same envelopes (same `event_id`); nothing is skipped. Each partition gets one produce request
per batch, sent after the previous one succeeded, so a failed request can never be overtaken
by a later one. One relay runs per event store: whoever holds the leadership lock.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from eventsourcing.persistence import Notification
from prometheus_client import Counter, Gauge

from contracts import topics
from contracts.kafka import Outgoing, produce_in_order
from opportunity.application import OPPORTUNITY_TOPICS, OpportunityApp
from opportunity.leadership import Leadership
from opportunity.positions import read_position, write_position
from opportunity.translation import envelope_of, won_message

log = logging.getLogger(__name__)

READER = "relay"


@dataclass
class RelayMetrics:
    relayed: Counter
    lag: Gauge
    leader: Gauge


class Relay:
    def __init__(
        self,
        app: OpportunityApp,
        engine: sa.Engine,
        make_producer: Callable[[], AIOKafkaProducer],
        leadership: Leadership,
        metrics: RelayMetrics,
        batch: int,
        idle_poll: float,
    ) -> None:
        self._app, self._engine, self._make_producer = app, engine, make_producer
        self._leadership, self._metrics = leadership, metrics
        self._batch, self._idle_poll = batch, idle_poll
        self._producer: AIOKafkaProducer | None = None
        self._position: int | None = None  # known while leader; None: read the stored one
        self._wake = asyncio.Event()
        self.lag = 0
        self.last_error: str | None = None

    @property
    def is_leader(self) -> bool:
        return self._leadership.holds()

    def wake(self) -> None:
        """Something was recorded here: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled: wait for leadership, then drain, retrying with backoff."""
        backoff = 0.1
        try:
            while True:
                try:
                    leader = await asyncio.to_thread(self._leadership.try_acquire)
                    self._metrics.leader.set(1 if leader else 0)
                    if not leader:
                        self._position = None
                        await self._pause(1.0)
                        continue
                    sent = await self.relay_once()
                    self.last_error, backoff = None, 0.1
                    if sent == 0:
                        await self._pause(self._idle_poll)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # broker or store down: retry from the stored position
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("relay: %s; retrying in %.1f s", self.last_error, backoff)
                    self._position = None
                    await self._drop_producer()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            await self._drop_producer()
            await asyncio.to_thread(self._leadership.release)
            self._metrics.leader.set(0)

    async def relay_once(self) -> int:
        """Publish the next batch of recorded events; how many were published."""
        position, top, notifications = await asyncio.to_thread(self._next_batch)
        if not notifications:
            if top > position:  # only index and idempotency records since: nothing to send
                await asyncio.to_thread(self._store, top)
            self._set_lag(top, top)
            return 0
        records = await asyncio.to_thread(self._records, notifications)
        producer = await self._ensure_producer()
        await produce_in_order(producer, records)
        done = top if len(notifications) < self._batch else notifications[-1].id
        await asyncio.to_thread(self._store, done)
        self._metrics.relayed.inc(len(notifications))
        self._set_lag(done, top)
        return len(notifications)

    def _next_batch(self) -> tuple[int, int, list[Notification]]:
        if self._position is None:  # just became leader: continue where the last one stopped
            with self._engine.connect() as conn:
                self._position = read_position(conn, READER)
        position = self._position
        top = self._app.last_position()
        found = list(
            self._app.recorder.select_notifications(
                start=position,
                limit=self._batch,
                stop=top,
                topics=OPPORTUNITY_TOPICS,
                inclusive_of_start=False,
            )
        )
        return position, top, found

    def _records(self, notifications: list[Notification]) -> list[Outgoing]:
        records = []
        for notification in notifications:
            envelope = envelope_of(notification)
            key = envelope["opportunity_id"].encode()
            headers = [("event_type", envelope["event_type"].encode())]
            stamp = _millis(envelope["recorded_at"])
            records.append(
                Outgoing(topics.OPPORTUNITY_EVENTS, key, orjson.dumps(envelope), stamp, headers)
            )
            if envelope["event_type"] == "OpportunityWon":
                won = self._app.opportunity(UUID(envelope["opportunity_id"]))
                records.append(
                    Outgoing(
                        topics.OPPORTUNITY_WON,
                        key,
                        orjson.dumps(won_message(envelope, won)),
                        stamp,
                        [],
                    )
                )
        return records

    def _store(self, position: int) -> None:
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Losing this write in a database crash only republishes (at least once);
                # not waiting for its flush keeps the next batch from waiting behind it.
                conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
            write_position(conn, READER, position)
        self._position = position

    def _set_lag(self, done: int, top: int) -> None:
        self.lag = max(0, top - done)
        self._metrics.lag.set(self.lag)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._make_producer()
            await producer.start()
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception as exc:  # a producer that cannot even stop is dropped anyway
                log.debug("relay: dropping producer: %s", exc)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()


def _millis(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)
