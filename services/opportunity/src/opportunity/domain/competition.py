"""A sales competition (销售竞赛, SPEC §9.2): its definition, recorded once. Defining it again the
same way records nothing; defining it otherwise is refused (a competition's rules do not change
while people compete under them).

Time and actor are passed in, never read here.
"""

from collections.abc import Collection
from datetime import date, datetime, time
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from contracts.competitions import CompetitionDefinedV1, CompetitionEvent, competition_record_id
from opportunity.domain.errors import DefinitionConflict, InvalidValue


def instant_of(text: str, field: str, zone: ZoneInfo) -> datetime:
    """A date (its midnight in the business time zone) or an RFC 3339 instant."""
    try:
        if len(text) == len("2026-12-01"):
            return datetime.combine(date.fromisoformat(text), time(), zone)
        found = datetime.fromisoformat(text)
    except ValueError:
        found = None
    if found is None or found.tzinfo is None:
        raise InvalidValue(
            field, f"{field} is a date (YYYY-MM-DD) or an instant with its offset (RFC 3339)"
        )
    return found


def definition(  # noqa: PLR0913 - the fields of a definition
    competition_id: str,
    name: str,
    metric: str,
    starts: datetime,
    ends: datetime,
    team_ids: Collection[str],
    tiers: Collection[str],
    types: Collection[str],
) -> CompetitionDefinedV1:
    """The definition, each list sorted without repeats (the same competition compares equal
    however its lists were ordered); `to` after `from` or InvalidValue naming `to`."""
    if ends <= starts:
        raise InvalidValue("to", "a competition ends (to) after it starts (from)")
    return CompetitionDefinedV1.model_validate(
        {
            "competition_id": competition_id,
            "name": name,
            "metric": metric,
            "from": starts,
            "to": ends,
            "team_ids": sorted(set(team_ids)),
            "tiers": sorted(set(tiers)),
            "types": sorted(set(types)),
        }
    )


class Competition(Aggregate):
    """One competition, by its id: the definition it was given."""

    @staticmethod
    def create_id(competition_id: str) -> UUID:
        return UUID(competition_record_id(competition_id))

    @classmethod
    def define(cls, defined: CompetitionDefinedV1, at: datetime, actor: str) -> "Competition":
        return cls(
            id=cls.create_id(defined.competition_id),
            definition=defined.model_dump(mode="json", by_alias=True),
            at=at,
            actor=actor,
        )

    @event(CompetitionEvent.DEFINED.value)
    def __init__(
        self,
        id: UUID,  # noqa: A002 - eventsourcing takes the aggregate id from this name
        definition: dict[str, Any],
        at: datetime,
        actor: str,
    ) -> None:
        self.definition = dict(definition)
        self.defined_at, self.defined_by = at, actor

    @property
    def defined(self) -> CompetitionDefinedV1:
        return CompetitionDefinedV1.model_validate(self.definition)

    def check_same(self, defined: CompetitionDefinedV1) -> None:
        """Nothing to record when `defined` is this definition; DefinitionConflict otherwise."""
        if defined != self.defined:
            raise DefinitionConflict(
                f"competition {defined.competition_id!r} is defined otherwise already",
                competition_id=defined.competition_id,
            )
