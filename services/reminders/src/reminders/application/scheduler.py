"""The scheduler: fires due timers and publishes what they send, at least once a second.

A round, for the partitions this copy owns:

1. one transaction: read the opportunities whose `next_due_at` has come (on its index, most
   overdue first, LIMIT — PostgreSQL locks them and skips rows another copy holds), ask the
   rule engine what fires now (of several overdue ladder rungs only the furthest), add each
   firing to the fired log and the outbox (a `reminder_id` already there is left alone: it
   fired before), and
   set each opportunity's next look;
2. publish the rows added (after a restart, a failure or a rebalance: every pending row of
   the owned partitions, oldest first) and wait for the broker's acknowledgement;
3. take them out of the outbox.

A crash after 1 publishes the rows at the next start; a crash after 2 publishes them again
with the same reminder ids. No firing is lost and none is made twice.

With 3 goes the outbox's log book (chassis.kafka.logbook). When a send lands before where the
broker had acknowledged, or (asked every few seconds while idle) a partition ends before it,
the broker lost its log: the reclaim and renewal commands it may have lost before the
opportunity service took them, and that would still take effect (`still_wanted`), are queued
again, without their reminders (people were told once).
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime

from chassis.kafka.logbook import LogBook, summary
from chassis.retrying import Backoff
from reminders.application.ownership import Ownership
from reminders.application.ports import Pending, Publisher, TimerStore, outgoing
from reminders.domain.clock import Clock
from reminders.domain.timers import Firing, Planner, still_wanted
from reminders.metrics import Metrics

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 30.0
STOP_GRACE_SECONDS = 5.0  # how long a stopping scheduler waits for its publish in flight


class Scheduler:
    def __init__(
        self,
        store: TimerStore,
        planner: Planner,
        publisher: Publisher,
        clock: Clock,
        ownership: Ownership,
        metrics: Metrics,
        batch: int,
        tick: float,
    ) -> None:
        self._store, self._planner, self._publisher = store, planner, publisher
        self._clock, self._ownership, self._metrics = clock, ownership, metrics
        self._batch, self._tick = batch, tick
        self._workers = 2 if store.is_postgres else 1
        self._busy = False
        self._wake = asyncio.Event()
        self._recover = True  # read the outbox: rows may be pending from before
        self._seen_changes = -1
        self._in_flight: asyncio.Task[None] | None = None
        self._book: LogBook | None = None
        ownership.settle = self.settle
        self.last_error: str | None = None
        self.rounds = 0

    def wake(self) -> None:
        """Something may be due now (an event made a timer overdue): look at once."""
        self._wake.set()

    async def run(self) -> None:
        """Rounds until cancelled; a failed round is retried with backoff."""
        backoff = Backoff()
        try:
            while True:
                try:
                    busy = await self.round()
                    if not busy:
                        await self.check_log()
                    self.last_error = None
                    backoff.reset()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # store or broker down: the rows stay pending
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    await backoff.wait("scheduler", self.last_error)
                    continue
                if not busy:
                    await self._pause(self._tick)
        finally:
            task, self._in_flight = self._in_flight, None
            if task is not None:
                # Stopping: let the publish in flight finish, so its rows leave the outbox
                # now instead of going out again at the next start.
                await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
                task.cancel()

    async def round(self) -> bool:
        """One round; True when there may be more to do right away.

        While many timers are due, a round's publish runs on while the next round fires in
        the database; a round waits for the previous publish before it publishes, and the
        last round (nothing more due) waits for its own, so an idle scheduler has nothing
        in flight, and a rebalance settles the publish in flight before it takes
        partitions away."""
        async with self._ownership.lock:
            try:
                return await self._round()
            except BaseException:
                # Some firing may have been committed without being published: read the
                # outbox next time.
                self._recover = True
                raise

    async def _round(self) -> bool:
        owned = self._ownership.partitions
        self._metrics.partitions.set(len(owned))
        if not owned:
            await self.settle()
            return False
        started = time.perf_counter()
        if self._seen_changes != self._ownership.changes:
            self._seen_changes, self._recover = self._ownership.changes, True
        now = self._clock()
        # Idle, one probe of the due index; while a wave lasts, the workers share it.
        groups = self._groups(owned) if self._busy else [owned]
        fired = await asyncio.gather(
            *(asyncio.to_thread(self._fire, group, now) for group in groups)
        )
        looked = max(count for count, _ in fired)
        added = sorted((row for _, rows in fired for row in rows), key=lambda r: r.seq)
        await self.settle()
        recovering = self._recover
        rows = (
            await asyncio.to_thread(self._store.pending, owned, self._batch)
            if recovering
            else added
        )
        busy = looked >= self._batch or (recovering and len(rows) >= self._batch)
        if recovering and len(rows) < self._batch:
            self._recover = False
        if rows:
            self._in_flight = asyncio.create_task(self._publish(rows))
            if not busy:
                await self.settle()
        self._metrics.tick_seconds.observe(time.perf_counter() - started)
        self.rounds += 1
        self._busy = busy
        return busy

    async def settle(self) -> None:
        """Wait for the publish in flight; if it failed, the outbox is read again next."""
        task, self._in_flight = self._in_flight, None
        if task is None:
            return
        try:
            await task
        except BaseException:
            self._recover = True
            raise

    def _groups(self, owned: list[int]) -> list[list[int]]:
        """The owned partitions split among the workers that fire at once (PostgreSQL: two
        transactions on disjoint rows overlap one's SQL with the other's computing)."""
        workers = min(self._workers, len(owned))
        return [owned[i::workers] for i in range(workers)]

    def _fire(self, owned: Sequence[int], now: datetime) -> tuple[int, list[Pending]]:
        with self._store.begin() as tx:
            due = tx.due(owned, now, self._batch)
            if not due:
                return 0, []
            firings: list[Firing] = []
            looks = []
            for facts in due:
                fired, next_look = self._planner.look(facts, now)
                firings.extend(fired)
                looks.append((facts.opportunity_id, next_look))
            added = tx.record(firings)
            tx.reschedule(looks)
        new = {row.reminder_id for row in added}
        for firing in firings:
            if firing.reminder_id in new:
                self._metrics.fired.labels(firing.kind.value).inc()
                self._metrics.fire_delay.observe((now - firing.due_at).total_seconds())
        return len(due), added

    async def check_log(self) -> None:
        """Ask (when it is time) whether the broker still has what it acknowledged."""
        book = await self._log_book()
        lost = await self._publisher.lost(book)
        if lost:
            async with self._ownership.lock:
                await self._after_loss(lost)

    async def _publish(self, rows: list[Pending]) -> None:
        if not rows:
            return
        book = await self._log_book()
        landed = await asyncio.wait_for(self._publisher.publish(outgoing(rows)), PUBLISH_TIMEOUT)
        lost = book.lost_in(landed)
        if lost:
            book = await self._after_loss(lost)
        book.landed(landed)
        await asyncio.to_thread(self._store.sent, [row.seq for row in rows], book, set(landed))
        self._metrics.published.inc(len(rows))

    async def _after_loss(self, lost: list[str]) -> LogBook:
        """Queue again the commands the lost log may have held and that would still take
        effect; a new log book."""
        book, again = await asyncio.to_thread(self._send_again)
        self._book, self._recover = book, True
        self._metrics.log_losses.inc()
        self._metrics.sent_again.inc(again)
        log.warning(
            "scheduler: the broker lost records it had acknowledged (%s); %d reclaim and "
            "renewal commands that may not have been taken are sent again",
            summary(lost),
            again,
        )
        return book

    def _send_again(self) -> tuple[LogBook, int]:
        with self._store.begin() as tx:
            commands = [c for c in tx.sent_commands() if still_wanted(c)]
            tx.send_again(commands)
            return tx.start_over_publishing(), len(commands)

    async def _log_book(self) -> LogBook:
        if self._book is None:
            self._book = await asyncio.to_thread(self._store.publish_book)
        return self._book

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()
