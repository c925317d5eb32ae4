"""Who plans what (SPEC §9): the teams and reps the principals file knows, who may set a target
or define a competition, and who sees which target. Refusals are `chassis.auth.Forbidden`
(the role) or InvalidValue (a rep or team nobody is)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chassis.auth import Forbidden, Principal
from contracts.rules import Role
from contracts.targets import TargetScope
from opportunity.domain.access import sees_everything
from opportunity.domain.errors import InvalidValue


@dataclass(frozen=True)
class Staff:
    """The reps (each with its team) and the teams of the principals file."""

    rep_teams: Mapping[str, str | None]
    teams: frozenset[str]

    @classmethod
    def of(cls, principals: Iterable[Principal]) -> "Staff":
        known = list(principals)
        return cls(
            {p.id: p.team_id for p in known if p.role is Role.REP},
            frozenset(p.team_id for p in known if p.team_id is not None),
        )

    def team_of(self, scope: TargetScope, scope_id: str) -> str | None:
        """The team a target is of: a team's own id, a rep's team, none for the company.
        InvalidValue naming `scope_id` for a rep or a team nobody is."""
        if scope is TargetScope.REP:
            if scope_id not in self.rep_teams:
                raise InvalidValue("scope_id", "no rep of that id in the principals file")
            team = self.rep_teams[scope_id]
            if team is None:
                raise InvalidValue("scope_id", "that rep is in no team")
            return team
        if scope is TargetScope.TEAM:
            self.check_teams([scope_id], "scope_id")
            return scope_id
        return None

    def check_teams(self, team_ids: Iterable[str], field: str) -> None:
        unknown = sorted(set(team_ids) - self.teams)
        if unknown:
            raise InvalidValue(field, f"no principal works in a team named in {field}")


def check_plans(principal: Principal, rule: str) -> None:
    """Only managers and admins set targets (`role.targets`) and define competitions
    (`role.competitions`)."""
    if principal.role not in (Role.ADMIN, Role.MANAGER):
        what = rule.removeprefix("role.")
        raise Forbidden(f"only a manager or an admin plans {what}", rule=rule)


def check_set_target(principal: Principal, scope: TargetScope, team_id: str | None) -> None:
    """Admins set every target; a manager the own team's and its reps' (not the company's)."""
    check_plans(principal, "role.targets")
    if principal.role is Role.ADMIN:
        return
    if scope is TargetScope.COMPANY:
        raise Forbidden("only an admin sets the company's target", rule="role.company")
    if principal.team_id is None or team_id != principal.team_id:
        raise Forbidden(
            f"this target is of team {team_id!r}; a manager sets the own team's",
            rule="role.team",
        )


def sees_target(
    principal: Principal, scope: TargetScope, scope_id: str, team_id: str | None
) -> bool:
    """Admins, services and viewers see every target; everyone the company's; a manager the
    own team's and its reps' (`team_id`: a rep's team when the target was set); a rep the own
    and the own team's."""
    if sees_everything(principal) or scope is TargetScope.COMPANY:
        return True
    if scope is TargetScope.TEAM:
        return principal.team_id is not None and scope_id == principal.team_id
    if principal.role is Role.MANAGER:
        return principal.team_id is not None and team_id == principal.team_id
    return scope_id == principal.id


def competing_teams(principal: Principal, team_ids: tuple[str, ...]) -> tuple[str, ...]:
    """The teams a competition of a manager or an admin (`check_plans`) is for: an admin's any
    (none: all teams); a manager's only the own (none given: the own)."""
    if principal.role is Role.ADMIN:
        return team_ids
    own = principal.team_id
    if own is None or any(team != own for team in team_ids):
        raise Forbidden("a manager defines competitions for the own team", rule="role.team")
    return (own,)
