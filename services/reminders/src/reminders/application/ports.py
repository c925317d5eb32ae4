"""What the use cases hand to and take from the adapters: the rows the store keeps (`Planned`)
and gives back to publish (`Pending`), and the publisher of fired timers' messages."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chassis.kafka.producing import Outgoing
from contracts import topics
from reminders.domain.facts import OpportunityFacts


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
    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Return once the broker acknowledged every message; raise otherwise."""
