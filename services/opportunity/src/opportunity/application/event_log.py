"""The event store read as a log: what every listing, the relay and the notification feed read
from, in recording order."""

from collections.abc import Sequence

from eventsourcing.persistence import Notification

from opportunity.application.stored_topics import EVENT_TOPICS
from opportunity.application.unit_of_work import BatchingApplication


class EventLog(BatchingApplication):
    def notifications(
        self, after: int, limit: int, topics: Sequence[str] = EVENT_TOPICS
    ) -> Sequence[Notification]:
        """Recorded events of `topics` (by default every event `crm.opportunity.events`
        carries) after position `after`, in recording order."""
        return self.recorder.select_notifications(
            start=after, limit=limit, topics=topics, inclusive_of_start=False
        )

    def last_position(self) -> int:
        return self.recorder.max_notification_id() or 0
