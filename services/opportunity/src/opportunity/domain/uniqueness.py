"""At most one active opportunity per customer and type (SPEC §2.4): the index aggregate."""

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from opportunity.domain.ids import ID_NAMESPACE


class ActiveOpportunityIndex(Aggregate):
    """Which opportunity is the active one for a (uscc, type); saved with it, so two
    concurrent creates conflict in the event store and only one is recorded."""

    @staticmethod
    def create_id(uscc: str, type: str) -> UUID:  # noqa: A002
        return uuid5(ID_NAMESPACE, f"active/{uscc}/{type}")

    @event("Taken")
    def __init__(self, uscc: str, type: str, opportunity_id: str) -> None:  # noqa: A002
        self.uscc, self.type = uscc, type
        self.opportunity_id: str | None = opportunity_id

    def take(self, opportunity_id: str) -> None:
        self._taken(opportunity_id=opportunity_id)

    def release(self, opportunity_id: str) -> None:
        if self.opportunity_id == opportunity_id:
            self._released(opportunity_id=opportunity_id)

    @event("Retaken")
    def _taken(self, opportunity_id: str) -> None:
        self.opportunity_id = opportunity_id

    @event("Released")
    def _released(self, opportunity_id: str) -> None:  # noqa: ARG002 - recorded in the event
        self.opportunity_id = None
