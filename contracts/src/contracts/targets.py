"""Targets (SPEC §9.1): the periods, scopes and metrics a target is set for, and the events of a
target on `crm.opportunity.events`.

A target is an aggregate of its own, one per (period, scope, scope id, metric). Its events travel
on the events topic beside the opportunities' (as the customer records' do): the envelope's
`opportunity_id` holds the target's id, every event type starts with `Target`, and every payload
names the whole key, so a reader needs no earlier event to file a change.
"""

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated
from uuid import NAMESPACE_URL, uuid5

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import RecordKind, kind_of

TARGET_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://oppstream/targets")


class TargetScope(StrEnum):
    COMPANY = "company"
    TEAM = "team"
    REP = "rep"


class TargetMetric(StrEnum):
    WON_AMOUNT = "won_amount"
    WON_COUNT = "won_count"
    NEW_OPPORTUNITIES = "new_opportunities"


_PERIOD = re.compile(r"^(?P<year>\d{4})(?:-Q(?P<quarter>[1-4])|-(?P<month>0[1-9]|1[0-2]))?$")


@dataclass(frozen=True, order=True)
class Period:
    """`2026`, `2026-Q4` or `2026-12`: the calendar days [start, end) in the business time zone."""

    start: date
    end: date
    text: str

    def __str__(self) -> str:
        return self.text

    def contains(self, day: date) -> bool:
        return self.start <= day < self.end

    def within(self, other: "Period") -> bool:
        return other.start <= self.start and self.end <= other.end


def parse_period(text: str) -> Period:
    """The period a text names; ValueError naming the forms accepted otherwise."""
    match = _PERIOD.match(text)
    if match is None:
        raise ValueError("the period is none of YYYY, YYYY-Qn (n 1-4), YYYY-MM")
    year = int(match["year"])
    if match["quarter"]:
        first = 3 * (int(match["quarter"]) - 1) + 1
        return Period(date(year, first, 1), _month_after(year, first + 2), text)
    if match["month"]:
        month = int(match["month"])
        return Period(date(year, month, 1), _month_after(year, month), text)
    return Period(date(year, 1, 1), date(year + 1, 1, 1), text)


def _month_after(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1)


def target_id_for(period: str, scope: str, scope_id: str, metric: str) -> str:
    """One target per key: the same key always has the same aggregate id."""
    return str(uuid5(TARGET_ID_NAMESPACE, f"{period}/{scope}/{scope_id}/{metric}"))


PeriodText = Annotated[str, Field(pattern=_PERIOD.pattern)]
ScopeId = Annotated[str, Field(min_length=1, max_length=100)]
TargetValue = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
TargetReason = Annotated[str, Field(max_length=500)]


class TargetChangeV1(BaseModel):
    """Every target event's payload: the key, the value from now on and the value before."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    period: PeriodText
    scope: TargetScope
    scope_id: ScopeId
    metric: TargetMetric
    value: TargetValue
    previous_value: TargetValue | None = None
    reason: TargetReason | None = None
    # A rep's team when the target was set (a rep's target is allocated from it); else null.
    team_id: ScopeId | None = None


class TargetEvent(StrEnum):
    # The first value of a company's or a team's target.
    SET = "TargetSet"
    # The first value of a rep's target: allocated from the rep's team.
    ALLOCATED = "TargetAllocated"
    # Any later value, of any scope.
    ADJUSTED = "TargetAdjusted"


TARGET_PAYLOADS: dict[str, type[TargetChangeV1]] = {
    kind.value: TargetChangeV1 for kind in TargetEvent
}


def is_target_event(event_type: str) -> bool:
    """Whether an event on the events topic is a target's: every type of theirs starts with
    `Target`, also those a reader's version does not know yet; no opportunity's does."""
    return kind_of(event_type) is RecordKind.TARGET
