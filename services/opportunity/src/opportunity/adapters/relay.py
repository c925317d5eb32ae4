"""The relay: recorded events → Kafka, in per-opportunity order, at least once.

It reads the notification log after its stored position, publishes each event's envelope to
`crm.opportunity.events` (and a won one also to `crm.opportunity.won`), and only after the
broker acknowledged everything stores the new position. A crash in between republishes the
same envelopes (same `event_id`); nothing is skipped. Each partition gets one produce request
per batch, sent after the previous one succeeded, so a failed request can never be overtaken
by a later one. One relay runs per event store: whoever holds the leadership lock.

Every record carries the epoch of the log it fills; when the broker turns out to have lost
what it acknowledged (relay_log.py), the relay publishes everything again under a new epoch.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from eventsourcing.persistence import Notification
from prometheus_client import Counter, Gauge

from chassis.kafka.logwatch import EPOCH_HEADER
from chassis.kafka.producing import (
    Landed,
    Outgoing,
    ensure_topics,
    new_producer,
    produce_in_order,
)
from contracts import topics
from opportunity.adapters.leadership import Leadership
from opportunity.adapters.positions import read_position, set_position, write_position
from opportunity.adapters.relay_log import (
    LogBook,
    LogProbe,
    new_epoch,
    read_book,
    start_over,
    write_book,
)
from opportunity.adapters.translation import envelope_of, won_message
from opportunity.application.app import OpportunityApp
from opportunity.application.stored_topics import OPPORTUNITY_TOPICS
from opportunity.metrics import Metrics
from opportunity.settings import Settings

log = logging.getLogger(__name__)

READER = "relay"


@dataclass
class RelayMetrics:
    relayed: Counter
    lag: Gauge
    leader: Gauge
    log_losses: Counter


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
        probe: LogProbe,
    ) -> None:
        self._app, self._engine, self._make_producer = app, engine, make_producer
        self._leadership, self._metrics = leadership, metrics
        self._batch, self._idle_poll, self._probe = batch, idle_poll, probe
        self._producer: AIOKafkaProducer | None = None
        # Known while leader; None: read the stored ones (and ask the broker about its log).
        self._position: int | None = None
        self._book = LogBook("")
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
                        if self._probe.due():
                            await self.check_log()
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
        if self._position is None:  # just became leader: continue where the last one stopped
            await asyncio.to_thread(self._resume)
            await self.check_log()
        position, top, notifications = await asyncio.to_thread(self._next_batch)
        if not notifications:
            if top > position:  # only index and idempotency records since: nothing to send
                await asyncio.to_thread(self._store, top, {})
            self._set_lag(top, top)
            return 0
        records = await asyncio.to_thread(self._records, notifications)
        producer = await self._ensure_producer()
        landed = await produce_in_order(producer, records)
        lost = self._book.lost_in(landed)
        if lost:
            await self._start_over(lost)
            return 0
        done = top if len(notifications) < self._batch else notifications[-1].id
        await asyncio.to_thread(self._store, done, landed)
        self._metrics.relayed.inc(len(notifications))
        self._set_lag(done, top)
        return len(notifications)

    async def check_log(self) -> None:
        """Ask the broker whether it still has what it acknowledged; if not, start over."""
        if not self._book.ends:
            return
        lost = self._book.lost_at(await self._probe.high_watermarks(sorted(self._book.ends)))
        if lost:
            await self._start_over(lost)

    async def _start_over(self, lost: list[str]) -> None:
        log.warning(
            "relay: the broker lost records it had acknowledged (%s); publishing the whole "
            "event history again under a new log epoch",
            "; ".join(lost[:4]) + (f"; and {len(lost) - 4} more" if len(lost) > 4 else ""),
        )
        self._metrics.log_losses.inc()
        # The topics as configured, unless the broker already made them on first use; and a
        # producer that learns their partitions afresh (its old ones may be gone).
        await self._probe.create_topics()
        await self._drop_producer()
        await asyncio.to_thread(self._forget_log)

    def _forget_log(self) -> None:
        with self._engine.begin() as conn:
            self._book = start_over(conn)
            set_position(conn, READER, 0)
        self._position = 0

    def _resume(self) -> None:
        with self._engine.connect() as conn:
            # Nothing stored yet: keep the epoch this relay may have published in already.
            self._book = read_book(conn, self._book.epoch or new_epoch())
            self._position = read_position(conn, READER)

    def _next_batch(self) -> tuple[int, int, list[Notification]]:
        position = self._position or 0
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
        epoch = (EPOCH_HEADER, self._book.epoch.encode())
        for notification in notifications:
            envelope = envelope_of(notification)
            key = envelope["opportunity_id"].encode()
            headers = [("event_type", envelope["event_type"].encode()), epoch]
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
                        [epoch],
                    )
                )
        return records

    def _store(self, position: int, landed: dict[tuple[str, int], Landed]) -> None:
        self._book.landed(landed)
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Losing this write in a database crash only republishes (at least once);
                # not waiting for its flush keeps the next batch from waiting behind it.
                conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
            write_position(conn, READER, position)
            write_book(conn, self._book, set(landed))
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


def build_relay(
    bootstrap: str,
    settings: Settings,
    app: OpportunityApp,
    engine: sa.Engine,
    leadership: Leadership,
    metrics: Metrics,
) -> Relay:
    return Relay(
        app,
        engine,
        lambda: new_producer(settings),
        leadership,
        RelayMetrics(
            metrics.relayed, metrics.relay_lag, metrics.relay_leader, metrics.relay_log_losses
        ),
        settings.relay_batch,
        settings.relay_idle_poll_ms / 1000,
        LogProbe(
            lambda: AIOKafkaConsumer(
                bootstrap_servers=bootstrap,
                request_timeout_ms=settings.kafka_request_timeout_ms,
                enable_auto_commit=False,
            ),
            lambda: ensure_topics(settings),
            settings.relay_log_check_ms / 1000,
        ),
    )


def _millis(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)
