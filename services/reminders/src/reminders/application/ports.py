"""What the use cases need from the adapters: the store of facts and fired timers (`TimerStore`,
one `UnitOfWork` per transaction), the rows it keeps (`Planned`) and gives back to publish
(`Pending`), and the publisher of fired timers' messages; the deliveries to channels and
their sender."""

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chassis.kafka.logbook import LogBook, Partition
from chassis.kafka.producing import Landed, Outgoing
from contracts import topics
from reminders.domain.delivery import Request
from reminders.domain.facts import OpportunityFacts
from reminders.domain.timers import Firing, SentCommand


@dataclass(frozen=True, slots=True)
class Planned:
    """Facts to save and when the scheduler must look at the opportunity next."""

    facts: OpportunityFacts
    next_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class Pending:
    """An outbox row: what to publish for one fired timer."""

    seq: int
    reminder_id: str
    opportunity_id: str
    partition: int
    reminder: bytes | None
    command: bytes | None


def outgoing(rows: Sequence[Pending]) -> list[Outgoing]:
    """The messages of fired timers: the reminder on `crm.reminders`, the reclaim or renewal
    command on `crm.opportunity.commands`, both keyed by the opportunity."""
    found = []
    for row in rows:
        key = row.opportunity_id.encode()
        if row.reminder is not None:
            found.append(Outgoing(topics.REMINDERS, key, bytes(row.reminder)))
        if row.command is not None:
            found.append(Outgoing(topics.OPPORTUNITY_COMMANDS, key, bytes(row.command)))
    return found


class Publisher(Protocol):
    async def publish(self, messages: Sequence[Outgoing]) -> dict[Partition, Landed]:
        """Return once the broker acknowledged every message, with where each partition's
        landed; raise otherwise."""

    async def lost(self, book: LogBook) -> list[str]:
        """Why the broker lost what `book` says it acknowledged, when it is time to ask it
        (empty: it did not, or not asked now)."""


class UnitOfWork(Protocol):
    """One transaction on the store (reminders.adapters.store.Transaction)."""

    def load(self, ids: Iterable[str]) -> dict[str, OpportunityFacts]: ...

    def save(self, planned: Sequence[Planned]) -> None: ...

    def advance(
        self, topic: str, next_offsets: dict[int, int], epochs: dict[int, str | None] | None = None
    ) -> None: ...

    def due(
        self, partitions: Sequence[int], now: datetime, limit: int
    ) -> list[OpportunityFacts]: ...

    def record(self, firings: Sequence[Firing]) -> list[Pending]: ...

    def reschedule(self, looks: Sequence[tuple[str, datetime | None]]) -> None: ...

    def sent_commands(self) -> list[SentCommand]: ...

    def send_again(self, commands: Sequence[SentCommand]) -> None: ...

    def start_over_publishing(self) -> LogBook: ...


class TimerStore(Protocol):
    """The store of facts, positions and fired timers (reminders.adapters.store.Store)."""

    is_postgres: bool

    def begin(self) -> AbstractContextManager[UnitOfWork]: ...

    def restart_partition(self, topic: str, partition: int) -> None: ...

    def pending(self, partitions: Sequence[int], limit: int) -> list[Pending]: ...

    def sent(self, seqs: Sequence[int], book: LogBook, changed: set[Partition]) -> None: ...

    def publish_book(self) -> LogBook: ...


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A delivery taken to be sent now: its channel, which attempt this is, the reminder."""

    delivery_id: str
    channel_id: str
    attempt: int
    reminder: bytes


@dataclass(frozen=True, slots=True)
class Attempted:
    """What came of one attempt: its new status, why it failed, when to try again."""

    delivery_id: str
    status: str
    at: datetime
    error: str | None = None
    next_attempt_at: datetime | None = None


class DeliveryStore(Protocol):
    """The deliveries in the store (reminders.adapters.delivery_store)."""

    def take_due(self, now: datetime, until: datetime, limit: int) -> list[DueDelivery]: ...

    def attempted(self, outcomes: Sequence[Attempted]) -> None: ...


class Sender(Protocol):
    async def send(self, request: Request) -> tuple[int, bytes]:
        """POST the request; the status and body of the answer. Raise on no answer."""
