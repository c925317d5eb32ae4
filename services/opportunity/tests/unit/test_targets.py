"""Targets (SPEC §9.1) without I/O: the first value is set (company, team) or allocated (rep), a
later one is an adjustment naming the value before, the same value records nothing, and a target
as of an instant; who may set which target and who sees it; the teams the principals file knows."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from chassis.auth import Forbidden, Principal
from contracts.rules import Role
from contracts.targets import TargetChangeV1, TargetScope
from opportunity.domain.errors import InvalidValue, OccurredAtRefused
from opportunity.domain.planning import Staff, check_plans, check_set_target, sees_target
from opportunity.domain.target import Target, TargetKey

T0 = datetime(2026, 10, 1, 1, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TEAM = TargetKey("2026-Q4", TargetScope.TEAM, "east", "won_amount")
REP = TargetKey("2026-Q4", TargetScope.REP, "rep-1", "won_amount")
STAFF = Staff(
    {"rep-1": "east", "rep-2": "east", "rep-3": "west", "loner": None}, frozenset({"east", "west"})
)
ADMIN = Principal("admin", Role.ADMIN)
MANAGER = Principal("manager-east", Role.MANAGER, "east")


def events(target: Target) -> list[str]:
    return [type(e).__name__ for e in target.collect_events()]


def test_a_teams_first_value_is_set_and_a_reps_allocated() -> None:
    team = Target.set_first(TEAM, Decimal(1000), "plan", None, T0, "admin")
    rep = Target.set_first(REP, Decimal(600), None, "east", T0, "manager-east")
    assert events(team) == ["TargetSet"]
    assert events(rep) == ["TargetAllocated"]
    assert (rep.value, rep.changes[0].team_id, rep.changes[0].previous_value) == (
        Decimal(600),
        "east",
        None,
    )
    assert team.id == TEAM.id != REP.id


def test_a_later_value_is_an_adjustment_naming_the_value_before() -> None:
    target = Target.set_first(TEAM, Decimal(1000), "plan", None, T0, "admin")
    assert target.adjust(Decimal(1200), "bigger", None, T0 + HOUR, "manager-east")
    adjusted = target.collect_events()[-1]
    assert type(adjusted).__name__ == "TargetAdjusted"
    assert target.version == 2
    last = target.changes[-1]
    assert (last.value, last.previous_value, last.reason, last.actor) == (
        Decimal(1200),
        Decimal(1000),
        "bigger",
        "manager-east",
    )


def test_the_value_it_has_records_nothing() -> None:
    target = Target.set_first(TEAM, Decimal(1000), None, None, T0, "admin")
    target.collect_events()
    assert not target.adjust(Decimal("1000.00"), "again", None, T0 + HOUR, "admin")
    assert target.collect_events() == []
    assert target.version == 1


def test_a_target_as_of_an_instant_has_the_changes_up_to_it() -> None:
    target = Target.set_first(TEAM, Decimal(1000), None, None, T0, "admin")
    target.adjust(Decimal(1200), None, None, T0 + 2 * HOUR, "admin")
    assert target.as_of(T0 - HOUR) == []
    assert [c.value for c in target.as_of(T0)] == [Decimal(1000)]
    assert [c.value for c in target.as_of(T0 + HOUR)] == [Decimal(1000)]
    assert [c.value for c in target.as_of(T0 + 2 * HOUR)] == [Decimal(1000), Decimal(1200)]


@pytest.mark.parametrize("value", [Decimal(-1), Decimal("NaN"), Decimal("Infinity")])
def test_a_value_that_is_no_count_or_amount_is_refused(value: Decimal) -> None:
    with pytest.raises(InvalidValue) as refused:
        Target.set_first(TEAM, value, None, None, T0, "admin")
    assert refused.value.field == "value"
    target = Target.set_first(TEAM, Decimal(1), None, None, T0, "admin")
    with pytest.raises(InvalidValue):
        target.adjust(value, None, None, T0 + HOUR, "admin")
    assert target.version == 1


def test_a_change_dated_before_the_last_one_is_refused() -> None:
    target = Target.set_first(TEAM, Decimal(1000), None, None, T0, "admin")
    with pytest.raises(OccurredAtRefused):
        target.adjust(Decimal(5), None, None, T0 - HOUR, "admin")


@pytest.mark.parametrize("period", ["2026-Q5", "2026-13", "Q4", "26"])
def test_a_key_with_a_period_in_no_form_is_refused_naming_period(period: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        TargetKey(period, TargetScope.TEAM, "east", "won_amount")
    assert refused.value.field == "period"


def test_the_event_fields_are_the_contracts_payload() -> None:
    target = Target.set_first(REP, Decimal("600.50"), "q4", "east", T0, "admin")
    created = target.collect_events()[0]
    payload = {name: getattr(created, name) for name in TargetChangeV1.model_fields}
    change = TargetChangeV1.model_validate(payload)
    assert (change.scope, change.scope_id, change.value, change.team_id) == (
        TargetScope.REP,
        "rep-1",
        Decimal("600.50"),
        "east",
    )


# -- the teams and reps of the principals file ---------------------------------------------------


def test_a_reps_target_is_of_the_reps_team_and_a_teams_of_itself() -> None:
    assert STAFF.team_of(TargetScope.REP, "rep-3") == "west"
    assert STAFF.team_of(TargetScope.TEAM, "east") == "east"
    assert STAFF.team_of(TargetScope.COMPANY, "acme") is None


@pytest.mark.parametrize(
    ("scope", "scope_id"),
    [
        (TargetScope.REP, "ghost"),
        (TargetScope.REP, "manager-east"),
        (TargetScope.REP, "loner"),
        (TargetScope.TEAM, "north"),
    ],
)
def test_a_rep_or_team_nobody_is_refused_naming_scope_id(scope: TargetScope, scope_id: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        STAFF.team_of(scope, scope_id)
    assert refused.value.field == "scope_id"


def test_staff_come_from_the_principals() -> None:
    staff = Staff.of(
        [MANAGER, Principal("rep-1", Role.REP, "east"), Principal("rep-9", Role.REP, "north")]
    )
    assert staff.rep_teams == {"rep-1": "east", "rep-9": "north"}
    assert staff.teams == frozenset({"east", "north"})


# -- who sets and who sees -----------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.REP, Role.VIEWER, Role.SERVICE])
def test_only_managers_and_admins_set_targets(role: Role) -> None:
    with pytest.raises(Forbidden) as refused:
        check_plans(Principal("someone", role, "east"), "role.targets")
    assert refused.value.detail["rule"] == "role.targets"


@pytest.mark.parametrize(
    ("scope", "team", "rule"),
    [
        (TargetScope.COMPANY, None, "role.company"),
        (TargetScope.TEAM, "west", "role.team"),
        (TargetScope.REP, "west", "role.team"),
    ],
)
def test_a_manager_sets_only_the_own_teams_and_its_reps_targets(
    scope: TargetScope, team: str | None, rule: str
) -> None:
    check_set_target(MANAGER, TargetScope.TEAM, "east")
    check_set_target(MANAGER, TargetScope.REP, "east")
    with pytest.raises(Forbidden) as refused:
        check_set_target(MANAGER, scope, team)
    assert refused.value.detail["rule"] == rule
    check_set_target(ADMIN, scope, team)


@pytest.mark.parametrize(
    ("principal", "seen"),
    [
        (ADMIN, {"company", "east", "west", "rep-1", "rep-3"}),
        (Principal("viewer", Role.VIEWER), {"company", "east", "west", "rep-1", "rep-3"}),
        (MANAGER, {"company", "east", "rep-1"}),
        (Principal("rep-1", Role.REP, "east"), {"company", "east", "rep-1"}),
        (Principal("rep-2", Role.REP, "east"), {"company", "east"}),
    ],
)
def test_who_sees_which_target(principal: Principal, seen: set[str]) -> None:
    targets = [
        (TargetScope.COMPANY, "company", None),
        (TargetScope.TEAM, "east", None),
        (TargetScope.TEAM, "west", None),
        (TargetScope.REP, "rep-1", "east"),
        (TargetScope.REP, "rep-3", "west"),
    ]
    assert {s for scope, s, team in targets if sees_target(principal, scope, s, team)} == seen
