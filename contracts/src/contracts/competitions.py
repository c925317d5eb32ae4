"""Sales competitions (销售竞赛, SPEC §9.2): what a competition counts, and its events on
`crm.opportunity.events`.

A competition is an aggregate of its own, one per competition id. Its events travel on the
events topic as the targets' do: the envelope's `opportunity_id` holds the aggregate's id (derived
from the competition's id), every event type starts with `Competition`, and every payload holds the
whole definition.
"""

from enum import StrEnum
from typing import Annotated
from uuid import NAMESPACE_URL, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from contracts.customer import Tier
from contracts.envelope import RecordKind, kind_of
from contracts.opportunity import OpportunityType

COMPETITION_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://oppstream/competitions")

CompetitionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class CompetitionMetric(StrEnum):
    WON_AMOUNT = "won_amount"
    WON_COUNT = "won_count"
    NEW_OPPORTUNITIES = "new_opportunities"
    ADVANCES = "advances"
    FOLLOW_UPS = "follow_ups"


def competition_record_id(competition_id: str) -> str:
    """The aggregate id of a competition: the same competition id always gives the same one."""
    return str(uuid5(COMPETITION_ID_NAMESPACE, competition_id))


class CompetitionDefinedV1(BaseModel):
    """The whole definition: events of opportunities matching the filters (none: all) that
    occurred in [from_, to) count, credited to the owner at the time of each event."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    competition_id: CompetitionId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    metric: CompetitionMetric
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime
    team_ids: tuple[Annotated[str, Field(min_length=1, max_length=100)], ...] = ()
    tiers: tuple[Tier, ...] = ()
    types: tuple[OpportunityType, ...] = ()

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> "CompetitionDefinedV1":
        if self.to <= self.from_:
            raise ValueError("to must be after from")
        return self


class CompetitionEvent(StrEnum):
    DEFINED = "CompetitionDefined"


COMPETITION_PAYLOADS: dict[str, type[CompetitionDefinedV1]] = {
    CompetitionEvent.DEFINED.value: CompetitionDefinedV1
}


def is_competition_event(event_type: str) -> bool:
    """Whether an event on the events topic is a competition's (every type starts with
    `Competition`); no opportunity's is."""
    return kind_of(event_type) is RecordKind.COMPETITION
