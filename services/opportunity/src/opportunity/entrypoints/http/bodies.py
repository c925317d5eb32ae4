"""Request bodies of the HTTP API (SPEC §4.1); unknown fields are refused, naming them."""

from datetime import date
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contracts.customer import GivenCustomer
from contracts.customer_record import KeyPerson, KeyPersonRole, Note, Stance
from contracts.opportunity import Amount, Currency, FollowUpKind, OpportunityType, Reason
from contracts.rules import ForecastCategory
from contracts.text import refuse_nul

Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=5000)]
Id = Annotated[str, Field(min_length=1, max_length=100)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    occurred_at: AwareDatetime | None = Field(
        default=None,
        description="service/admin only: when it happened (history import); "
        "not in the future nor before the opportunity's last event",
    )

    _no_nul = field_validator("*", mode="before")(refuse_nul)


class CreateBody(Body):
    type: OpportunityType | None = Field(
        default=None,
        description="left out: `resale` while the customer has a running contract, else `new`",
    )
    customer: GivenCustomer
    owner_id: Id | None = None
    team_id: Id | None = None
    title: Text | None = None
    amount: Amount | None = None
    currency: Currency = "CNY"
    expected_close_on: date | None = None
    source: Annotated[str, Field(max_length=100)] | None = None


class AdvanceBody(Body):
    to_stage: Id


class RevertBody(Body):
    to_stage: Id
    reason: Reason


class FollowUpBody(Body):
    kind: FollowUpKind
    note: LongText


class PauseBody(Body):
    reason: Reason
    until: date | None = None


class DeferBody(Body):
    reason: Reason = Field(description="a deferral reason's id (`GET /pipelines`)")
    revisit_on: date | None = Field(
        default=None, description="left out: the deferral day + the reason's revisit_after"
    )
    note: Note | None = Field(default=None, description="required by some reasons (`other`)")


class ReasonBody(Body):
    reason: Reason


class AssignBody(Body):
    owner_id: Id
    override: bool = Field(
        default=False,
        description="admin or manager: assign over the pool rule's max_held (SPEC §8.3)",
    )


class ClaimBody(Body):
    pass


class WinBody(Body):
    amount: Amount
    contract_ref: Annotated[str, Field(min_length=1, max_length=100)]
    contract_start_on: date | None = None
    contract_end_on: date | None = None


class LoseBody(Body):
    reason: Id
    competitor: Text | None = None


class UpdateBody(Body):
    title: Text | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    expected_close_on: date | None = None
    customer_name: Text | None = None
    industry: Annotated[str, Field(max_length=100)] | None = None
    region: Annotated[str, Field(max_length=100)] | None = None
    forecast_category: ForecastCategory | None = Field(
        default=None,
        description="manager or admin: override the stage's forecast category; null clears it",
    )


class KeyPersonBody(Body):
    name: Text
    title: Text | None = None
    role: (
        Annotated[
            str,
            Field(
                max_length=100,
                description="e.g. decision_maker, influencer, champion, user, blocker",
            ),
        ]
        | None
    ) = None
    phone: Annotated[str, Field(max_length=50)] | None = None
    email: Annotated[str, Field(max_length=200)] | None = None
    note: LongText | None = None


class CompetitorBody(Body):
    name: Text
    strengths: LongText | None = None
    weaknesses: LongText | None = None
    note: LongText | None = None


class DocumentBody(Body):
    name: Text
    kind: Annotated[
        str, Field(max_length=100, description="e.g. proposal, quote, tender, contract, other")
    ] = "other"
    url: Annotated[str, Field(min_length=1, max_length=2000)]


class CustomerKeyPersonBody(Body, KeyPerson):
    """A key person of a customer (SPEC §8.1), as `KeyPerson` takes one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def key_person(self) -> KeyPerson:
        return KeyPerson.model_validate(self.model_dump(exclude={"occurred_at"}))


class CustomerKeyPersonChanges(Body):
    """The fields of a customer's key person to change; `null` clears an optional one."""

    name: Text | None = None
    title: Text | None = None
    role: KeyPersonRole | None = None
    stance: Stance | None = None
    reports_to: Annotated[str, Field(max_length=36)] | None = None
    phone: Annotated[str, Field(max_length=50)] | None = None
    email: Annotated[str, Field(max_length=200)] | None = None
    note: Note | None = None
