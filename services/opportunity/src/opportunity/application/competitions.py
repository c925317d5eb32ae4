"""Competitions (SPEC §9.2): the use case that defines one (inside a unit of work), and the
competitions as the API shows them. Their standings are the projections service's."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from opportunity.application.targets import Recorded
from opportunity.application.unit_of_work import (
    BatchingApplication,
    Context,
    NotFound,
    UnitOfWork,
)
from opportunity.domain.competition import Competition, definition, instant_of
from opportunity.domain.planning import Staff, check_plans, competing_teams


@dataclass(frozen=True)
class GivenCompetition:
    """A competition as a request gives it: `starts` and `ends` as text (a date or an
    instant), the lists possibly empty."""

    competition_id: str
    name: str
    metric: str
    starts: str
    ends: str
    team_ids: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()
    types: tuple[str, ...] = ()


class CompetitionIndex(Protocol):
    """Where the competitions are found without reading the store (the listing)."""

    def all(self) -> list[dict[str, Any]]:
        """Every competition as `competition_state` shows it, by start then id."""
        ...


class Competitions:
    def __init__(
        self,
        app: BatchingApplication,
        staff: Staff,
        zone: ZoneInfo,
        index: Callable[[], CompetitionIndex],
    ) -> None:
        """`index`: the competition listing (wired after the application, hence a callable)."""
        self._app, self._staff, self._zone, self._index = app, staff, zone, index

    def define(self, uow: UnitOfWork, given: GivenCompetition, ctx: Context) -> Recorded:
        """201 with the competition it defined; 200 with the same one defined before (nothing
        recorded); DefinitionConflict (409) when it was defined otherwise."""
        check_plans(ctx.principal, "role.competitions")
        starts = instant_of(given.starts, "from", self._zone)
        ends = instant_of(given.ends, "to", self._zone)
        self._staff.check_teams(given.team_ids, "team_ids")
        teams = competing_teams(ctx.principal, given.team_ids)
        defined = definition(
            given.competition_id,
            given.name,
            given.metric,
            starts,
            ends,
            teams,
            given.tiers,
            given.types,
        )
        found = uow.find(Competition.create_id(given.competition_id), Competition)
        if found is not None:
            found.check_same(defined)
            return 200, competition_state(found)
        created = Competition.define(defined, ctx.at(), ctx.principal.id)
        uow.add(created)
        return 201, competition_state(created)

    def competition(self, competition_id: str) -> dict[str, Any]:
        found = UnitOfWork(self._app).find(Competition.create_id(competition_id), Competition)
        if found is None:
            raise NotFound(f"no competition {competition_id}", id=competition_id)
        return competition_state(found)

    def competitions(self) -> dict[str, Any]:
        return {"competitions": self._index().all()}


def competition_state(competition: Competition) -> dict[str, Any]:
    """The competition as the API shows it: its definition, who defined it and when."""
    shown = dict(competition.definition)
    return {
        "id": shown.pop("competition_id"),
        **shown,
        "defined_by": competition.defined_by,
        "defined_at": competition.defined_at.isoformat(),
        "version": competition.version,
    }
