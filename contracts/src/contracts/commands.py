"""`crm.opportunity.commands`: what other services ask the opportunity service to do."""

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.opportunity import Reason


class ReclaimCommand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    command_id: str
    command: Literal["reclaim"]
    opportunity_id: str
    reason: Reason = Field(description="recorded as the OpportunityReclaimed reason")
    rule_id: str
    issued_at: AwareDatetime
    based_on_version: int = Field(ge=1)


class CreateRenewalCommand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    command_id: str
    command: Literal["create_renewal"]
    opportunity_id: str = Field(description="the won opportunity to renew")
    issued_at: AwareDatetime


OpportunityCommand = Annotated[
    ReclaimCommand | CreateRenewalCommand, Field(discriminator="command")
]
