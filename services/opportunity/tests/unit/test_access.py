"""Who may do what (SPEC §4.4): reps on their own, managers on their team, viewers on nothing."""

import pytest

from chassis.auth import Forbidden, Principal
from contracts.rules import Role
from opportunity.domain.access import can_read, check_act, check_create, imports_history

REP = Principal("rep-1", Role.REP, "east")
MANAGER = Principal("manager-1", Role.MANAGER, "east")
ADMIN = Principal("admin-1", Role.ADMIN, None)
SERVICE = Principal("svc", Role.SERVICE, None)
VIEWER = Principal("viewer-1", Role.VIEWER, "east")

# (owner_id, team_id, status) of the opportunity acted on.
OWN = ("rep-1", "east", "open")
COLLEAGUES = ("rep-2", "east", "open")
POOLED_OWN_TEAM = (None, "east", "pooled")
OTHER_TEAM = ("rep-9", "west", "open")
POOLED_OTHER_TEAM = (None, "west", "pooled")
OPPORTUNITIES = {
    "own": OWN,
    "colleague's": COLLEAGUES,
    "pooled in own team": POOLED_OWN_TEAM,
    "other team's": OTHER_TEAM,
    "pooled in other team": POOLED_OTHER_TEAM,
}

REP_COMMANDS = (
    "advance",
    "revert",
    "follow-ups",
    "update",
    "key-persons",
    "competitors",
    "documents",
    "pause",
    "resume",
    "defer",
    "reactivate",
    "win",
    "lose",
    "void",
)
ALL_COMMANDS = (*REP_COMMANDS, "reclaim", "assign", "claim")

# (who, command, opportunity) → the rule that refuses it, or None when allowed.
ACT_CASES: list[tuple[Principal, str, str, str | None]] = [
    *[(REP, c, "own", None) for c in REP_COMMANDS],
    (REP, "claim", "pooled in own team", None),
    *[(REP, c, "colleague's", "role.owner") for c in REP_COMMANDS],
    (REP, "reclaim", "own", "role.reclaim"),
    (REP, "assign", "own", "role.assign"),
    (REP, "assign", "pooled in own team", "role.assign"),
    *[(REP, c, "other team's", "role.team") for c in ALL_COMMANDS],
    (REP, "claim", "pooled in other team", "role.team"),
    *[(MANAGER, c, o, None) for c in ALL_COMMANDS for o in ("own", "colleague's")],
    (MANAGER, "assign", "pooled in own team", None),
    *[(MANAGER, c, "other team's", "role.team") for c in ALL_COMMANDS],
    (MANAGER, "assign", "pooled in other team", "role.team"),
    *[(p, c, o, None) for p in (ADMIN, SERVICE) for c in ALL_COMMANDS for o in OPPORTUNITIES],
    *[(VIEWER, c, o, "role.viewer") for c in ALL_COMMANDS for o in OPPORTUNITIES],
]


def _case_id(case: tuple[Principal, str, str, str | None]) -> str:
    who, command, opportunity, refused_by = case
    return f"{who.role}-{command}-{opportunity}-{'refused' if refused_by else 'allowed'}"


@pytest.mark.parametrize(
    ("who", "command", "opportunity", "refused_by"), ACT_CASES, ids=[_case_id(c) for c in ACT_CASES]
)
def test_check_act_follows_the_role_rules(
    who: Principal, command: str, opportunity: str, refused_by: str | None
) -> None:
    owner_id, team_id, _status = OPPORTUNITIES[opportunity]
    if refused_by is None:
        check_act(who, command, owner_id=owner_id, team_id=team_id)
    else:
        with pytest.raises(Forbidden) as refused:
            check_act(who, command, owner_id=owner_id, team_id=team_id)
        assert refused.value.rule == refused_by


READ_CASES: list[tuple[Principal, str, bool]] = [
    (REP, "own", True),
    (REP, "pooled in own team", True),
    (REP, "colleague's", False),
    (REP, "other team's", False),
    (REP, "pooled in other team", False),
    (MANAGER, "own", True),
    (MANAGER, "colleague's", True),
    (MANAGER, "pooled in own team", True),
    (MANAGER, "other team's", False),
    (MANAGER, "pooled in other team", False),
    *[(p, o, True) for p in (ADMIN, SERVICE, VIEWER) for o in OPPORTUNITIES],
]


@pytest.mark.parametrize(
    ("who", "opportunity", "readable"),
    READ_CASES,
    ids=[f"{p.role}-{o}-{r}" for p, o, r in READ_CASES],
)
def test_can_read_follows_the_role_rules(who: Principal, opportunity: str, readable: bool) -> None:
    owner_id, team_id, status = OPPORTUNITIES[opportunity]

    assert can_read(who, owner_id, team_id, status) is readable


# (who, owner_id, team_id) → the rule that refuses the create, or None.
CREATE_CASES: list[tuple[Principal, str | None, str | None, str | None]] = [
    (REP, "rep-1", "east", None),
    (REP, "rep-2", "east", "role.owner"),
    (REP, None, "east", "role.owner"),
    (REP, "rep-1", "west", "role.team"),
    (MANAGER, "rep-2", "east", None),
    (MANAGER, None, "east", None),
    (MANAGER, "rep-9", "west", "role.team"),
    (ADMIN, "rep-9", "west", None),
    (ADMIN, None, None, None),
    (SERVICE, None, "west", None),
    (VIEWER, "viewer-1", "east", "role.viewer"),
]


@pytest.mark.parametrize(
    ("who", "owner_id", "team_id", "refused_by"),
    CREATE_CASES,
    ids=[f"{p.role}-{o}-{t}" for p, o, t, _ in CREATE_CASES],
)
def test_check_create_lets_a_rep_create_only_for_self_in_own_team(
    who: Principal, owner_id: str | None, team_id: str | None, refused_by: str | None
) -> None:
    if refused_by is None:
        check_create(who, owner_id, team_id)
    else:
        with pytest.raises(Forbidden) as refused:
            check_create(who, owner_id, team_id)
        assert refused.value.rule == refused_by


@pytest.mark.parametrize(
    ("role", "imports"),
    [
        (Role.REP, False),
        (Role.MANAGER, False),
        (Role.VIEWER, False),
        (Role.ADMIN, True),
        (Role.SERVICE, True),
    ],
)
def test_only_service_and_admin_import_history(role: Role, imports: bool) -> None:
    assert imports_history(Principal("p", role, "east")) is imports
