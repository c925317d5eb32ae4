"""A customer's won contracts, which make a new lead of a running customer a resale."""

from datetime import date
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from opportunity.domain.ids import ID_NAMESPACE


class CustomerAccount(Aggregate):
    """A customer's won contracts: a lead of a customer whose contract still runs is a resale."""

    @staticmethod
    def create_id(uscc: str) -> UUID:
        return uuid5(ID_NAMESPACE, f"customer/{uscc}")

    @event("Opened")
    def __init__(self, uscc: str) -> None:
        self.uscc = uscc
        self.contracts: dict[str, date | None] = {}

    def record_contract(self, opportunity_id: str, ends_on: date | None) -> None:
        self._contract_won(opportunity_id=opportunity_id, ends_on=ends_on)

    def has_running_contract(self, on: date) -> bool:
        """A won contract without an end, or ending on or after `on`."""
        return any(end is None or end >= on for end in self.contracts.values())

    @event("ContractWon")
    def _contract_won(self, opportunity_id: str, ends_on: date | None) -> None:
        self.contracts = {**self.contracts, opportunity_id: ends_on}
