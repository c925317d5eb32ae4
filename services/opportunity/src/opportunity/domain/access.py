"""Who may do what (SPEC §4.4): reps act on their own and their team's pooled opportunities,
managers on their team's, admin and service on all, viewers on none. A customer (SPEC §8.1) is
read and changed by whoever may read one of its opportunities. Refusals are
`chassis.auth.Forbidden`."""

from collections.abc import Iterable

from chassis.auth import Forbidden, Principal
from contracts.opportunity import Status
from contracts.rules import Role

# Commands only managers, admins and services give (a rep hands back a deal by asking them).
MANAGING_COMMANDS = frozenset({"reclaim", "assign"})


def imports_history(principal: Principal) -> bool:
    """Service and admin principals may pass `occurred_at` to import history."""
    return principal.role in (Role.SERVICE, Role.ADMIN)


def sees_everything(principal: Principal) -> bool:
    return principal.role in (Role.ADMIN, Role.SERVICE, Role.VIEWER)


def can_read(principal: Principal, owner_id: str | None, team_id: str | None, status: str) -> bool:
    if sees_everything(principal):
        return True
    if principal.role is Role.MANAGER:
        return principal.team_id is not None and team_id == principal.team_id
    return owner_id == principal.id or (status == Status.POOLED and team_id == principal.team_id)


# An opportunity of a customer as reading it is judged: (owner_id, team_id, status).
Holder = tuple[str | None, str | None, str]


def can_read_customer(principal: Principal, opportunities: Iterable[Holder]) -> bool:
    """Reps read the customers of their own opportunities and of their team's pool, managers
    their team's; viewers, admins and services every customer."""
    return sees_everything(principal) or any(can_read(principal, *o) for o in opportunities)


def check_read_customer(principal: Principal, opportunities: Iterable[Holder]) -> None:
    if not can_read_customer(principal, opportunities):
        raise Forbidden("this customer is not yours to see", rule="role.read")


def check_change_customer(principal: Principal, opportunities: Iterable[Holder]) -> None:
    """Admins and services change every customer; reps and managers the ones they read."""
    if principal.role is Role.VIEWER:
        raise Forbidden("a viewer only reads", rule="role.viewer")
    if not can_read_customer(principal, opportunities):
        raise Forbidden("this customer is not yours to change", rule="role.customer")


def _acts_on_every_team(principal: Principal, team_id: str | None, refusal: str) -> bool:
    """Viewers never act; admins and services act on every team; the others only on their own
    (else Forbidden with `refusal`)."""
    if principal.role is Role.VIEWER:
        raise Forbidden("a viewer only reads", rule="role.viewer")
    if principal.role in (Role.ADMIN, Role.SERVICE):
        return True
    if principal.team_id is None or team_id != principal.team_id:
        raise Forbidden(refusal, rule="role.team")
    return False


def check_act(
    principal: Principal, command: str, owner_id: str | None, team_id: str | None
) -> None:
    """Raise Forbidden unless the principal may give this command on this opportunity."""
    refusal = f"this opportunity belongs to team {team_id!r}, not to yours"
    if _acts_on_every_team(principal, team_id, refusal) or principal.role is Role.MANAGER:
        return
    if command in MANAGING_COMMANDS:
        raise Forbidden(f"a rep may not {command}; ask a manager", rule=f"role.{command}")
    if command == "claim" or owner_id == principal.id:
        return
    raise Forbidden("a rep acts on own opportunities and claims pooled ones", rule="role.owner")


def check_assign(
    principal: Principal, owner_id: str, owner_team: str | None, team_id: str | None
) -> None:
    """A manager assigns only within the own team; admins and services across teams."""
    if owner_team is not None and owner_team != team_id and principal.role is Role.MANAGER:
        raise Forbidden(
            f"{owner_id} works in team {owner_team!r}; a manager assigns within the own team",
            rule="role.team",
        )


def check_create(principal: Principal, owner_id: str | None, team_id: str | None) -> None:
    refusal = "opportunities are created in your own team"
    if _acts_on_every_team(principal, team_id, refusal):
        return
    if principal.role is Role.REP and owner_id != principal.id:
        raise Forbidden("a rep creates opportunities owned by self", rule="role.owner")


def check_override(principal: Principal) -> None:
    """Only admins and managers assign over a pool rule's max_held (SPEC §8.3)."""
    if principal.role not in (Role.ADMIN, Role.MANAGER):
        raise Forbidden(
            "only an admin or a manager may assign over the pool's max_held", rule="role.override"
        )


def check_read_standing(principal: Principal, owner_id: str, owner_team: str | None) -> None:
    """Reps read their own pool standing, managers their team's, the others anyone's."""
    if sees_everything(principal) or owner_id == principal.id:
        return
    if principal.role is Role.MANAGER:
        if owner_team is not None and owner_team == principal.team_id:
            return
        raise Forbidden("a manager reads the pool standing of the own team", rule="role.team")
    raise Forbidden("a rep reads the own pool standing", rule="role.owner")


def check_forecast_override(principal: Principal) -> None:
    """Only a manager (of the opportunity's team: `check_act`) or an admin overrides the
    stage's forecast category (SPEC §9)."""
    if principal.role not in (Role.ADMIN, Role.MANAGER):
        raise Forbidden(
            "only a manager or an admin sets an opportunity's forecast category",
            rule="role.forecast_category",
        )
