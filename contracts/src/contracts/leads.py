"""`crm.leads.qualified` from the lead service and our answer on `crm.leads.rejected`."""

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.customer import Customer
from contracts.opportunity import Amount, Currency


class QualifiedLead(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    lead_id: str = Field(min_length=1, max_length=100)
    qualified_at: AwareDatetime
    customer: Customer
    owner_id: str | None = None
    team_id: str | None = None
    expected_amount: Amount | None = None
    currency: Currency | None = None
    source: str | None = None
    notes: str | None = Field(default=None, max_length=5000)


class RejectionReason(StrEnum):
    DUPLICATE = "duplicate"
    INVALID = "invalid"


class RejectedLead(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    lead_id: str
    reason: RejectionReason
    detail: str = Field(description="what was wrong, naming the field")
    existing_opportunity_id: str | None = None
