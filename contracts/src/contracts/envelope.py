"""The envelope every event on `crm.opportunity.events` travels in (SPEC §3.1)."""

from typing import Any
from uuid import NAMESPACE_URL, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://oppstream/events")


def event_id_for(opportunity_id: str, version: int) -> str:
    """The same event always has the same id, so every redelivery carries it."""
    return str(uuid5(EVENT_ID_NAMESPACE, f"{opportunity_id}/{version}"))


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str
    event_type: str
    schema_version: int = Field(ge=1)
    opportunity_id: str
    version: int = Field(ge=1, description="the aggregate's version; +1 per event")
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    actor: str
    payload: dict[str, Any]
