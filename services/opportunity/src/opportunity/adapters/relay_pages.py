"""What the relay reads from the event store and the Kafka records it makes of it: a page of
notifications after a position, each one's envelope on `crm.opportunity.events` (keyed by its
aggregate's id, its event type and the log epoch in the headers) and, a win, the won message."""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import orjson
from eventsourcing.persistence import Notification

from chassis.kafka.logwatch import EPOCH_HEADER
from chassis.kafka.producing import Outgoing
from contracts import topics
from opportunity.adapters.translation import envelope_of, won_message
from opportunity.application.app import OpportunityApp
from opportunity.application.stored_topics import EVENT_TOPICS


@dataclass(frozen=True)
class Page:
    """Up to a batch of notifications after the position `after`: every one up to `done`, read
    when the log reached `top`; and each one's records in the log epoch `epoch`."""

    after: int
    done: int
    top: int
    notifications: list[Notification]
    records: list[list[Outgoing]]
    epoch: str


class Pages:
    """Reads the store a batch at a time (in a worker thread: every call is blocking I/O)."""

    def __init__(self, app: OpportunityApp, batch: int) -> None:
        self._app, self._batch = app, batch

    def read(self, after: int, epoch: str) -> Page:
        """The next batch of events after `after`, asked for a batch of positions at a time:
        over the whole backlog PostgreSQL would gather and sort every row of it, each batch."""
        top = self._app.last_position()
        notifications: list[Notification] = []
        until = after
        while len(notifications) < self._batch and until < top:
            start, until = until, min(top, until + self._batch)
            wanted = self._batch - len(notifications)
            notifications += self.page(start, until, EVENT_TOPICS, wanted)
        done = notifications[-1].id if len(notifications) == self._batch else until
        records = self.records(notifications, epoch)
        return Page(after, done, top, notifications, records, epoch)

    def page(
        self, after: int, until: int, names: list[str], limit: int | None = None
    ) -> list[Notification]:
        """Up to `limit` (a batch) of the notifications of `names` in (after, until]."""
        return list(
            self._app.recorder.select_notifications(
                start=after,
                limit=limit or self._batch,
                stop=until,
                topics=names,
                inclusive_of_start=False,
            )
        )

    def records(
        self, notifications: list[Notification], epoch: str, won_only: bool = False
    ) -> list[list[Outgoing]]:
        """Each notification's records in the log epoch `epoch`: its envelope on the events
        topic (unless `won_only`) and, a win, the won message."""
        records: list[list[Outgoing]] = []
        epoch_header = (EPOCH_HEADER, epoch.encode())
        for notification in notifications:
            envelope = envelope_of(notification)
            key = envelope["opportunity_id"].encode()
            stamp = _millis(envelope["recorded_at"])
            own: list[Outgoing] = []
            if not won_only:
                headers = [("event_type", envelope["event_type"].encode()), epoch_header]
                own.append(
                    Outgoing(topics.OPPORTUNITY_EVENTS, key, orjson.dumps(envelope), stamp, headers)
                )
            if envelope["event_type"] == "OpportunityWon":
                won = self._app.opportunity(UUID(envelope["opportunity_id"]))
                own.append(
                    Outgoing(
                        topics.OPPORTUNITY_WON,
                        key,
                        orjson.dumps(won_message(envelope, won)),
                        stamp,
                        [epoch_header],
                    )
                )
            records.append(own)
        return records


def _millis(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)
