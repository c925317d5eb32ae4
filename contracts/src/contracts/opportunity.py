"""Payloads of the events on `crm.opportunity.events`, one model per event type (schema v1)."""

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.customer import Customer, CustomerRef

Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class OpportunityType(StrEnum):
    NEW = "new"
    RENEWAL = "renewal"
    RESALE = "resale"


class Status(StrEnum):
    OPEN = "open"
    PAUSED = "paused"
    DEFERRED = "deferred"
    POOLED = "pooled"
    WON = "won"
    LOST = "lost"
    VOIDED = "voided"


ACTIVE_STATUSES = frozenset({Status.OPEN, Status.PAUSED, Status.DEFERRED, Status.POOLED})


class FollowUpKind(StrEnum):
    CALL = "call"
    VISIT = "visit"
    MEETING = "meeting"
    EMAIL = "email"
    OTHER = "other"


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class OpportunityCreatedV1(Payload):
    type: OpportunityType
    pipeline_id: str
    stage: str
    customer: Customer
    owner_id: str | None
    team_id: str | None
    title: str | None = None
    amount: Amount | None = None
    currency: Currency = "CNY"
    expected_close_on: date | None = None
    source: str | None = None
    lead_id: str | None = None
    renewal_of: str | None = Field(
        default=None, description="id of the won opportunity a renewal continues"
    )


class StageAdvancedV1(Payload):
    from_stage: str
    to_stage: str
    skipped: list[str] = Field(default_factory=list, description="stages passed over")


class StageRevertedV1(Payload):
    from_stage: str
    to_stage: str
    reason: Reason


class FollowUpLoggedV1(Payload):
    kind: FollowUpKind
    note: Annotated[str, Field(max_length=5000)]


class InfoUpdatedV1(Payload):
    changes: dict[str, str | None] = Field(
        description="field name to its new value, as JSON text (amount as a decimal string)"
    )


class KeyPersonAddedV1(Payload):
    person_id: str
    name: str
    title: str | None = None
    role: str | None = None
    phone: str | None = None
    email: str | None = None
    note: str | None = None


class CompetitorRecordedV1(Payload):
    competitor_id: str
    name: str
    strengths: str | None = None
    weaknesses: str | None = None
    note: str | None = None


class DocumentAttachedV1(Payload):
    document_id: str
    name: str
    kind: str
    url: str


class OpportunityPausedV1(Payload):
    reason: Reason
    until: date | None = None


class OpportunityResumedV1(Payload):
    paused_seconds: float = Field(ge=0, description="how long this pause lasted")


class OpportunityDeferredV1(Payload):
    reason: Reason = Field(
        description="a deferral reason's id from the rules file; free text in events recorded "
        "before the reasons were coded"
    )
    revisit_on: date
    note: Annotated[str, Field(max_length=2000)] | None = None
    paused_seconds: float = Field(
        default=0, ge=0, description="how long a pause it ends lasted (deferred from paused)"
    )


class OpportunityReactivatedV1(Payload):
    pass


class OpportunityReclaimedV1(Payload):
    reason: Reason
    previous_owner_id: str | None
    previous_status: Status
    rule_id: str | None = None
    command_id: str | None = None


class OpportunityAssignedV1(Payload):
    owner_id: str
    previous_owner_id: str | None
    team_id: str | None = Field(default=None, description="the team after the assignment")
    claimed: bool = Field(description="true when a rep took a pooled opportunity for self")
    override: bool = Field(
        default=False,
        description="true when an admin or manager assigned it over the pool rule's max_held",
    )
    rule_id: str | None = Field(
        default=None,
        description="the pool rule that redistributed it at its reclaim (SPEC §8.3)",
    )


class OpportunityWonV1(Payload):
    stage: str
    amount: Amount
    currency: Currency
    contract_ref: Annotated[str, Field(min_length=1, max_length=100)]
    contract_start_on: date | None = None
    contract_end_on: date | None = None


class OpportunityLostV1(Payload):
    stage: str
    reason: str
    competitor: str | None = None


class OpportunityVoidedV1(Payload):
    reason: Reason
    previous_status: Status


PAYLOADS: dict[str, type[Payload]] = {
    "OpportunityCreated": OpportunityCreatedV1,
    "StageAdvanced": StageAdvancedV1,
    "StageReverted": StageRevertedV1,
    "FollowUpLogged": FollowUpLoggedV1,
    "InfoUpdated": InfoUpdatedV1,
    "KeyPersonAdded": KeyPersonAddedV1,
    "CompetitorRecorded": CompetitorRecordedV1,
    "DocumentAttached": DocumentAttachedV1,
    "OpportunityPaused": OpportunityPausedV1,
    "OpportunityResumed": OpportunityResumedV1,
    "OpportunityDeferred": OpportunityDeferredV1,
    "OpportunityReactivated": OpportunityReactivatedV1,
    "OpportunityReclaimed": OpportunityReclaimedV1,
    "OpportunityAssigned": OpportunityAssignedV1,
    "OpportunityWon": OpportunityWonV1,
    "OpportunityLost": OpportunityLostV1,
    "OpportunityVoided": OpportunityVoidedV1,
}

PROGRESS_EVENTS = frozenset(
    {
        "OpportunityCreated",
        "StageAdvanced",
        "StageReverted",
        "FollowUpLogged",
        "OpportunityResumed",
        "OpportunityReactivated",
        "OpportunityAssigned",
    }
)


class OpportunityWon(BaseModel):
    """`crm.opportunity.won`: what the order system needs to start a contract."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str
    opportunity_id: str
    type: OpportunityType
    customer: CustomerRef
    owner_id: str | None
    team_id: str | None
    amount: Amount
    currency: Currency
    contract_ref: str
    contract_start_on: date | None = None
    contract_end_on: date | None = None
    won_at: AwareDatetime
