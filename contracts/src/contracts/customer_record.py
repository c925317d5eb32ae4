"""The customer record (SPEC §8.1): its events on `crm.opportunity.events`, one model per event
type (schema v1), and the key persons of its decision chain (决策链).

A customer record is an aggregate of its own, one per USCC. Its events travel on the events
topic beside the opportunities' (so they share its order and its recovery after a lost log):
the envelope's `opportunity_id` holds the record's id, every event type starts with
`Customer`, and every payload names the `uscc`. A consumer that knows only opportunities
skips them as unknown event types (§3.1).
"""

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from contracts.customer import Customer
from contracts.envelope import RecordKind, kind_of

Text = Annotated[str, Field(min_length=1, max_length=200)]
Note = Annotated[str, Field(max_length=2000)]


class KeyPersonRole(StrEnum):
    DECISION_MAKER = "decision_maker"
    ECONOMIC_BUYER = "economic_buyer"
    INFLUENCER = "influencer"
    USER = "user"
    GATEKEEPER = "gatekeeper"
    CHAMPION = "champion"
    OTHER = "other"


class Stance(StrEnum):
    SUPPORTER = "supporter"
    NEUTRAL = "neutral"
    OPPONENT = "opponent"
    UNKNOWN = "unknown"


class KeyPerson(BaseModel):
    """A key person as `POST /customers/{uscc}/key-persons` takes one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Text
    title: Text | None = None
    role: KeyPersonRole
    stance: Stance = Stance.UNKNOWN
    reports_to: Annotated[str, Field(max_length=36)] | None = None
    phone: Annotated[str, Field(max_length=50)] | None = None
    email: Annotated[str, Field(max_length=200)] | None = None
    note: Note | None = None


class CustomerPayload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    uscc: str


class CustomerRecordedV1(CustomerPayload):
    """The first opportunity of a customer recorded it: the profile as given then."""

    customer: Customer


class CustomerProfiledV1(CustomerPayload):
    """A later opportunity gave the customer another profile (name, tier, facts…)."""

    customer: Customer


class CustomerKeyPersonAddedV1(CustomerPayload):
    person_id: str
    person: KeyPerson
    # The opportunity it was added through (`POST /opportunities/{id}/key-persons`), if any.
    opportunity_id: str | None = None


class CustomerKeyPersonChangedV1(CustomerPayload):
    """The fields changed, with their new values (None clears one)."""

    person_id: str
    changes: dict[str, str | None]


class CustomerKeyPersonRemovedV1(CustomerPayload):
    person_id: str


def is_customer_event(event_type: str) -> bool:
    """Whether an event on the events topic is a customer record's: every type of theirs starts
    with `Customer`, also those a reader's version does not know yet; no opportunity's does."""
    return kind_of(event_type) is RecordKind.CUSTOMER


CUSTOMER_PAYLOADS: dict[str, type[CustomerPayload]] = {
    "CustomerRecorded": CustomerRecordedV1,
    "CustomerProfiled": CustomerProfiledV1,
    "CustomerKeyPersonAdded": CustomerKeyPersonAddedV1,
    "CustomerKeyPersonChanged": CustomerKeyPersonChangedV1,
    "CustomerKeyPersonRemoved": CustomerKeyPersonRemovedV1,
}
