"""Competitions (SPEC §9.2) without I/O: `from` and `to` as a date or an instant, a definition
that ends before it starts refused naming `to`, the same definition however its lists are
ordered, another one refused, and the teams a manager or an admin may name."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from chassis.auth import Forbidden, Principal
from contracts.competitions import CompetitionDefinedV1
from contracts.rules import Role
from opportunity.domain.competition import Competition, definition, instant_of
from opportunity.domain.errors import DefinitionConflict, InvalidValue
from opportunity.domain.planning import competing_teams

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 1, tzinfo=SHANGHAI)
END = datetime(2027, 1, 1, tzinfo=SHANGHAI)


def q4(**changed: object) -> CompetitionDefinedV1:
    fields: dict[str, object] = {
        "competition_id": "q4",
        "name": "Q4 sprint",
        "metric": "won_count",
        "starts": START,
        "ends": END,
        "team_ids": ["west", "east"],
        "tiers": ["KA"],
        "types": [],
        **changed,
    }
    return definition(**fields)  # type: ignore[arg-type]


def test_a_date_is_its_midnight_in_the_business_time_zone() -> None:
    assert instant_of("2026-10-01", "from", SHANGHAI) == START
    assert instant_of("2026-10-01", "from", SHANGHAI).astimezone(UTC).hour == 16


@pytest.mark.parametrize(
    "text", ["2026-09-30T16:00:00Z", "2026-09-30T16:00:00+00:00", "2026-10-01T00:00:00+08:00"]
)
def test_an_instant_keeps_its_offset(text: str) -> None:
    assert instant_of(text, "from", SHANGHAI) == START


@pytest.mark.parametrize("text", ["2026-10-01T00:00:00", "tomorrow", "2026-13-01", ""])
def test_a_text_that_is_no_date_or_instant_with_offset_is_refused_naming_the_field(
    text: str,
) -> None:
    with pytest.raises(InvalidValue) as refused:
        instant_of(text, "to", SHANGHAI)
    assert refused.value.field == "to"


@pytest.mark.parametrize("ends", [START, datetime(2026, 9, 1, tzinfo=SHANGHAI)])
def test_a_competition_that_ends_before_it_starts_is_refused_naming_to(ends: datetime) -> None:
    with pytest.raises(InvalidValue) as refused:
        q4(ends=ends)
    assert refused.value.field == "to"


def test_the_lists_of_a_definition_are_sorted_without_repeats() -> None:
    defined = q4(team_ids=["west", "east", "west"], types=["resale", "new"])
    assert (defined.team_ids, defined.types) == (("east", "west"), ("new", "resale"))
    assert defined == q4(team_ids=["east", "west"], types=["new", "resale"])


def test_defining_it_again_the_same_way_is_accepted_and_otherwise_refused() -> None:
    competition = Competition.define(q4(), START, "admin")
    assert [type(e).__name__ for e in competition.collect_events()] == ["CompetitionDefined"]
    competition.check_same(q4(team_ids=["east", "west"], ends=END.astimezone(UTC)))
    with pytest.raises(DefinitionConflict):
        competition.check_same(q4(name="Q4 marathon"))
    assert competition.id == Competition.create_id("q4")


def test_the_recorded_definition_is_the_contracts_with_from() -> None:
    competition = Competition.define(q4(), START, "admin")
    created = competition.collect_events()[0]
    recorded = created.definition  # type: ignore[attr-defined]
    assert recorded["from"] == START.isoformat()
    assert CompetitionDefinedV1.model_validate(recorded) == q4()


def test_a_managers_competition_is_for_the_own_team() -> None:
    manager = Principal("manager-east", Role.MANAGER, "east")
    assert competing_teams(manager, ()) == ("east",)
    assert competing_teams(manager, ("east",)) == ("east",)
    with pytest.raises(Forbidden) as refused:
        competing_teams(manager, ("east", "west"))
    assert refused.value.detail["rule"] == "role.team"


def test_an_admins_competition_is_for_the_teams_named_or_all() -> None:
    admin = Principal("admin", Role.ADMIN)
    assert competing_teams(admin, ()) == ()
    assert competing_teams(admin, ("west",)) == ("west",)
