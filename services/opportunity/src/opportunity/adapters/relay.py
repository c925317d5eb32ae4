"""The relay: recorded events → Kafka, in per-opportunity order, at least once.

It reads the notification log after its stored position, publishes each event's envelope to
`crm.opportunity.events` (the opportunities' and the customer records', each keyed by its
aggregate's id; a won one also to `crm.opportunity.won`), and only after the
broker acknowledged everything stores the new position. A crash in between republishes the
same envelopes (same `event_id`); nothing is skipped. Each partition gets one produce request
per batch, sent after the previous one succeeded, so a failed request can never be overtaken
by a later one. One relay runs per event store: whoever holds the leadership lock.

While a batch is in flight and more events wait, the relay reads and encodes the next batch (a
read ahead, used only if it starts at the relay's position in the current epoch); it sends it
only once the previous one was acknowledged and its position stored: at most one batch is ever
unconfirmed.

Every record carries the epoch of the log it fills. When the broker turns out to have lost what
it acknowledged (chassis.kafka.logbook), the relay starts a new epoch and publishes again what
its readers may lack: the events after the position every reader group had read through
(relay_readers.py), and every won message of the history (who reads those is not known).
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from eventsourcing.persistence import Notification
from prometheus_client import Counter, Gauge

from chassis.kafka.logbook import LogBook, LogProbe, log_probe, new_epoch, summary
from chassis.kafka.producing import (
    Landed,
    Outgoing,
    new_producer,
    produce_in_order,
)
from chassis.kafka.traces import publishing
from chassis.retrying import Backoff
from chassis.sql.logbooks import read_book, start_over, write_book
from contracts import topics
from opportunity.adapters.leadership import Leadership
from opportunity.adapters.positions import read_position, set_position, write_position
from opportunity.adapters.relay_log import relay_log
from opportunity.adapters.relay_pages import Page, Pages
from opportunity.adapters.relay_readers import Progress, ReaderCommits, reader_commits
from opportunity.application.app import OpportunityApp
from opportunity.application.commit_traces import CommitTraces
from opportunity.application.stored_topics import OPPORTUNITY_TOPICS
from opportunity.metrics import Metrics
from opportunity.settings import Settings

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


async def finished(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn` in a worker thread. Cancelled, it still waits for the thread to finish (a thread
    cannot be stopped), so that whoever cancelled the relay may then close the store the
    thread reads: closing a SQLite connection under a running query crashes the process."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait({work})
        raise


READER = "relay"
READ_BY_ALL = "relay.read_by_all"  # every reader group has read the events up to here
WON_DONE, WON_UNTIL = "relay.won_again.done", "relay.won_again.until"  # see _publish_won_again
WON_TOPICS = [t for t in OPPORTUNITY_TOPICS if t.endswith(".OpportunityWon")]


@dataclass
class RelayMetrics:
    relayed: Counter
    lag: Gauge
    leader: Gauge
    log_losses: Counter
    read_by_all: Gauge


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
        commits: ReaderCommits,
        readers: list[str],
        traces: CommitTraces | None = None,
    ) -> None:
        self._app, self._engine, self._make_producer = app, engine, make_producer
        self._traces = traces  # None: tracing is off
        self._leadership, self._metrics = leadership, metrics
        self._batch, self._idle_poll, self._probe = batch, idle_poll, probe
        self._pages = Pages(app, batch)
        self._commits, self._readers = commits, readers
        self._readers_noted = 0.0  # when the readers' commits were last read
        self._progress = Progress(0)
        # Won messages to publish again after a loss: (done up to, until) positions.
        self._won: tuple[int, int] | None = None
        self._producer: AIOKafkaProducer | None = None
        self._ahead: asyncio.Future[Page] | None = None  # the next page, being read
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
        backoff = Backoff()
        try:
            while True:
                try:
                    leader = await finished(self._leadership.try_acquire)
                    self._metrics.leader.set(1 if leader else 0)
                    if not leader:
                        self._position = None
                        await self._drop_ahead()
                        await self._pause(1.0)
                        continue
                    sent = await self.relay_once()
                    self.last_error = None
                    backoff.reset()
                    if time.monotonic() - self._readers_noted >= self._probe.interval:
                        await self.note_readers()
                    if sent == 0:
                        if self._probe.due():
                            await self.check_log()
                        await self._pause(self._idle_poll)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # broker or store down: retry from the stored position
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self._position = None
                    await self._drop_ahead()
                    await self._drop_clients()
                    await backoff.wait("relay", self.last_error)
        finally:
            await self._drop_ahead()
            await self._drop_clients()
            await finished(self._leadership.release)
            self._metrics.leader.set(0)

    async def relay_once(self) -> int:
        """Publish the next batch of recorded events; how many were published."""
        if self._position is None:  # just became leader: continue where the last one stopped
            await finished(self._resume)
            await self.check_log()
        page = await self._next_page()
        notifications, done, top = page.notifications, page.done, page.top
        if not notifications:
            if top > page.after:  # only index and idempotency records since: nothing to send
                await finished(self._store, top, {})
            self._set_lag(top, top)
            # The readers have every event: the won messages the lost log held come next.
            return await self._publish_won_again(*self._won) if self._won is not None else 0
        if done < top:  # there is more: read it while this batch is in flight
            self._ahead = asyncio.ensure_future(finished(self._pages.read, done, page.epoch))
        landed = await self._send(page.notifications, page.records)
        if landed is None:
            return 0
        await finished(self._store, done, landed)
        self._progress.published(done, self._events_ends())
        self._metrics.relayed.inc(len(notifications))
        self._set_lag(done, top)
        return len(notifications)

    async def note_readers(self) -> None:
        """Learn how far every reader group has read, and store it."""
        self._readers_noted = time.monotonic()
        partitions = sorted(self._events_ends())
        commits = await self._commits.fetch(topics.OPPORTUNITY_EVENTS, self._readers, partitions)
        before = self._progress.read_by_all
        read_by_all = self._progress.read(self._readers, partitions, commits)
        self._metrics.read_by_all.set(read_by_all)
        if read_by_all > before:
            await finished(self._store_positions, {READ_BY_ALL: read_by_all})

    async def check_log(self) -> None:
        """Ask the broker whether it still has what it acknowledged; if not, start over."""
        lost = await self._probe.lost(self._book)
        if lost:
            await self._start_over(lost)

    async def _next_page(self) -> Page:
        """The page after the relay's position: the one read ahead if it still fits."""
        position, epoch = self._position or 0, self._book.epoch
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            page = await ahead
            if page.after == position and page.epoch == epoch:
                return page
        return await finished(self._pages.read, position, epoch)

    async def _drop_ahead(self) -> None:
        """Forget the page read ahead, once its thread is done with the store."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.cancel()
            await asyncio.wait({ahead})
            if not ahead.cancelled():
                ahead.exception()  # a read that failed is simply not used: no warning of it

    async def _send(
        self, notifications: list[Notification], records: list[list[Outgoing]]
    ) -> dict[tuple[str, int], Landed] | None:
        """Publish each notification's records; None when the sends show the broker lost its
        log (the relay started over). Traced, each record is published in a span, the child of
        its command's (or a new trace's), its traceparent on the record."""
        with publishing(None if self._traces is None else self._traces.tracer) as spans:
            if spans is None or self._traces is None:
                outgoing = [record for own in records for record in own]
            else:
                outgoing = [
                    spans.traced(
                        record, self._traces.span_of(n.originator_id, n.originator_version)
                    )
                    for n, own in zip(notifications, records, strict=True)
                    for record in own
                ]
            producer = await self._ensure_producer()
            landed = await produce_in_order(producer, outgoing)
        if self._traces is not None:
            self._traces.published((n.originator_id, n.originator_version) for n in notifications)
        lost = self._book.lost_in(landed)
        if lost:
            await self._start_over(lost)
            return None
        return landed

    async def _publish_won_again(self, done: int, until: int) -> int:
        """The next page of the won messages up to where the events are published again from."""
        page = await finished(self._pages.page, done, until, WON_TOPICS)
        landed: dict[tuple[str, int], Landed] | None = {}
        if page:
            records = await finished(self._pages.records, page, self._book.epoch, True)
            landed = await self._send(page, records)
        if landed is None:
            return 0
        done = page[-1].id if len(page) == self._batch else until
        self._book.landed(landed)
        await finished(self._store_positions, {WON_DONE: done}, set(landed))
        self._won = (done, until) if done < until else None
        return len(page)

    async def _start_over(self, lost: list[str]) -> None:
        self._metrics.log_losses.inc()
        # The topics as configured, unless the broker already made them on first use; and a
        # producer that learns their partitions afresh (its old ones may be gone).
        await self._probe.create_topics()
        await self._drop_clients()
        start = await finished(self._forget_log)
        log.warning(
            "relay: the broker lost records it had acknowledged (%s); under a new log epoch, "
            "publishing again the events after position %d (every reader group had read up to "
            "there) and the won messages up to it",
            summary(lost),
            start,
        )

    def _forget_log(self) -> int:
        with self._engine.begin() as conn:
            self._book = start_over(conn, relay_log)
            start = read_position(conn, READ_BY_ALL)
            for reader, position in ((READER, start), (WON_DONE, 0), (WON_UNTIL, start)):
                set_position(conn, reader, position)
        self._position, self._progress = start, Progress(start)
        self._progress.start_over()
        self._won = (0, start) if start else None
        self._metrics.read_by_all.set(start)
        return start

    def _resume(self) -> None:
        with self._engine.connect() as conn:
            # Nothing stored yet: keep the epoch this relay may have published in already.
            self._book = read_book(conn, relay_log, self._book.epoch or new_epoch())
            self._position = read_position(conn, READER)
            won = (read_position(conn, WON_DONE), read_position(conn, WON_UNTIL))
            self._progress = Progress(read_position(conn, READ_BY_ALL))
        self._progress.published(self._position, self._events_ends())
        self._won = won if won[0] < won[1] else None

    def _events_ends(self) -> dict[int, int]:
        return {p: end for (t, p), end in self._book.ends.items() if t == topics.OPPORTUNITY_EVENTS}

    def _store_positions(
        self, positions: dict[str, int], changed: set[tuple[str, int]] | None = None
    ) -> None:
        with self._engine.begin() as conn:
            for reader, position in positions.items():
                write_position(conn, reader, position)
            write_book(conn, relay_log, self._book, changed or set())

    def _store(self, position: int, landed: dict[tuple[str, int], Landed]) -> None:
        self._book.landed(landed)
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Losing this write in a database crash only republishes (at least once);
                # not waiting for its flush keeps the next batch from waiting behind it.
                conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
            write_position(conn, READER, position)
            write_book(conn, relay_log, self._book, set(landed))
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

    async def _drop_clients(self) -> None:
        await self._commits.close()
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
    settings: Settings,
    app: OpportunityApp,
    engine: sa.Engine,
    leadership: Leadership,
    metrics: Metrics,
    traces: CommitTraces | None = None,
) -> Relay:
    return Relay(
        app,
        engine,
        lambda: new_producer(settings),
        leadership,
        RelayMetrics(
            metrics.relayed,
            metrics.relay_lag,
            metrics.relay_leader,
            metrics.relay_log_losses,
            metrics.relay_read_by_all,
        ),
        settings.relay_batch,
        settings.relay_idle_poll_ms / 1000,
        log_probe(settings, settings.relay_log_check_ms / 1000),
        reader_commits(settings),
        settings.relay_reader_groups,
        traces,
    )
