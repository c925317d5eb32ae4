"""The reminders store: one object for reading, one transaction for each unit of work, both
made of the facts, the outbox and the deliveries parts (schema in reminders.adapters.schema)."""

import contextlib
from collections.abc import Iterator

from reminders.adapters.delivery_store import DeliveryReads
from reminders.adapters.facts_store import FactsReads, FactsWork
from reminders.adapters.outbox_store import OutboxReads, OutboxWork


class Transaction(FactsWork, OutboxWork):
    """One unit of work on the reminders database."""


class Store(FactsReads, OutboxReads, DeliveryReads):
    """The reminders database."""

    @contextlib.contextmanager
    def begin(self) -> Iterator[Transaction]:
        with self.engine.begin() as conn:
            yield Transaction(conn, self.is_postgres)
