"""Envelopes of one customer record's events, as the opportunity service emits them on the
events topic (SPEC §8.1, contracts.customer_record), checked against the contract unless a
test means them to be refused."""

from datetime import datetime
from typing import Any
from uuid import uuid4

from contracts.customer_record import CUSTOMER_PAYLOADS
from services.projections.tests.history import T0, envelope_of
from tests.support.principals import new_uscc


class CustomerHistory:
    """One customer record: call the methods in order; `envelopes` is what it emitted."""

    def __init__(
        self, at: datetime = T0, *, uscc: str | None = None, checked: bool = True, **profile: Any
    ) -> None:
        self.id = str(uuid4())
        self.uscc = uscc or new_uscc()
        self.envelopes: list[dict[str, Any]] = []
        self.emit("CustomerRecorded", at, {"customer": self.profile(**profile)}, checked=checked)

    def profile(self, **changes: Any) -> dict[str, Any]:
        return {
            "uscc": self.uscc,
            "name": "华东机械有限公司",
            "tier": "KA",
            "ownership": "SOE",
            "industry": "manufacturing",
            "region": "east",
            "registered_capital": "50000000.00",
            "employees": 1200,
            "annual_revenue": "880000000.00",
            "classified_by": "ka-by-revenue",
            **changes,
        }

    def profiled(self, at: datetime, **profile: Any) -> "CustomerHistory":
        return self.emit("CustomerProfiled", at, {"customer": self.profile(**profile)})

    def add(
        self,
        person_id: str,
        at: datetime,
        opportunity_id: str | None = None,
        **person: Any,
    ) -> "CustomerHistory":
        fields = {"name": "王建国", "title": "总经理", "role": "decision_maker", **person}
        payload = {"person_id": person_id, "person": fields, "opportunity_id": opportunity_id}
        return self.emit("CustomerKeyPersonAdded", at, payload)

    def change(self, person_id: str, at: datetime, **changes: str | None) -> "CustomerHistory":
        return self.emit(
            "CustomerKeyPersonChanged", at, {"person_id": person_id, "changes": changes}
        )

    def remove(self, person_id: str, at: datetime) -> "CustomerHistory":
        return self.emit("CustomerKeyPersonRemoved", at, {"person_id": person_id})

    def emit(
        self, event_type: str, at: datetime, payload: dict[str, Any], *, checked: bool = True
    ) -> "CustomerHistory":
        """The next event; `checked=False` for a payload the contract is meant to refuse."""
        payload = {"uscc": self.uscc, **payload}
        envelope = envelope_of(self.id, len(self.envelopes) + 1, event_type, at, payload, "rep-1")
        if checked and event_type in CUSTOMER_PAYLOADS:
            CUSTOMER_PAYLOADS[event_type].model_validate(payload)
        self.envelopes.append(envelope)
        return self
