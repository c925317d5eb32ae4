"""`crm.reminders`: what the reminders service tells reps and managers."""

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class ReminderKind(StrEnum):
    FOLLOW_UP = "follow_up"
    STALE_WARNING = "stale_warning"
    ESCALATION = "escalation"
    RECLAIM_DUE = "reclaim_due"
    REVISIT_DUE = "revisit_due"
    PAUSE_ENDED = "pause_ended"


class Reminder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    reminder_id: str = Field(description="deterministic from (opportunity, rule, due time)")
    kind: ReminderKind
    opportunity_id: str
    owner_id: str | None
    team_id: str | None
    rule_id: str
    due_at: AwareDatetime
    fired_at: AwareDatetime
    detail: dict[str, Any] = Field(
        description="why: rule id, rules-file version and the facts that matched"
    )
