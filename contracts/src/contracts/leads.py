"""`crm.leads.qualified` from the lead service and our answer on `crm.leads.rejected`."""

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contracts.customer import GivenCustomer
from contracts.opportunity import Amount, Currency
from contracts.text import refuse_nul


class QualifiedLead(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    lead_id: str = Field(min_length=1, max_length=100)
    qualified_at: AwareDatetime
    # Without `tier` the opportunity service classifies the customer (SPEC §8.2).
    customer: GivenCustomer
    # The bounds an opportunity created over HTTP has (the read models' columns hold them).
    owner_id: str | None = Field(default=None, min_length=1, max_length=100)
    team_id: str | None = Field(default=None, min_length=1, max_length=100)
    expected_amount: Amount | None = None
    currency: Currency | None = None
    source: str | None = Field(default=None, max_length=100)
    notes: str | None = Field(default=None, max_length=5000)

    _no_nul = field_validator("*", mode="before")(refuse_nul)


class RejectionReason(StrEnum):
    DUPLICATE = "duplicate"
    INVALID = "invalid"


class RejectedLead(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    lead_id: str
    reason: RejectionReason
    detail: str = Field(description="what was wrong, naming the field")
    existing_opportunity_id: str | None = None
