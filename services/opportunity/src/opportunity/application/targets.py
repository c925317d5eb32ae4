"""Targets (SPEC §9.1): the use case that sets, allocates or adjusts one (inside a unit of work),
and the targets as they stood at an instant, each with its history and, for a team, what is
allocated to its reps."""

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from chassis.auth import Principal
from contracts.targets import TargetScope
from opportunity.application.unit_of_work import BatchingApplication, Context, UnitOfWork
from opportunity.domain.planning import Staff, check_plans, check_set_target, sees_target
from opportunity.domain.target import Change, Target, TargetKey

# What a command on a target or a competition answers: its status code and its body.
Recorded = tuple[int, dict[str, Any]]
_SCOPE_ORDER = {scope: rank for rank, scope in enumerate(TargetScope)}


class TargetIndex(Protocol):
    """Where targets are found without reading the store (the target listing)."""

    def find(self, period: str | None, scope: str | None, metric: str | None = None) -> list[UUID]:
        """The ids of the targets of `period`, `scope` and `metric` (None: any)."""
        ...


class Targets:
    def __init__(
        self,
        app: BatchingApplication,
        staff: Staff,
        index: Callable[[], TargetIndex],
    ) -> None:
        """`index`: the target listing (wired after the application, hence a callable)."""
        self._app, self._staff, self._index = app, staff, index

    def team_of(self, principal: Principal, key: TargetKey) -> str | None:
        """The team the target is of, once the principal may set it: Forbidden for a role or a
        team out of reach, InvalidValue naming `scope_id` for a rep or a team nobody is."""
        check_plans(principal, "role.targets")
        team = self._staff.team_of(key.scope, key.scope_id)
        check_set_target(principal, key.scope, team)
        return team

    def set_target(
        self, uow: UnitOfWork, key: TargetKey, value: Decimal, reason: str | None, ctx: Context
    ) -> Recorded:
        """Set, allocate or adjust the target of `key`: 201 when it created the target, else
        200 (also when `value` is the one it has: then nothing is recorded)."""
        team = self.team_of(ctx.principal, key)
        rep_team = team if key.scope is TargetScope.REP else None
        at, actor = ctx.at(), ctx.principal.id
        target = uow.find(key.id, Target)
        if target is None:
            target = Target.set_first(key, value, reason, rep_team, at, actor)
            uow.add(target)
            return 201, target_state(target)
        target.adjust(value, reason, rep_team, at, actor)
        return 200, target_state(target)

    def targets(
        self, period: str | None, scope: str | None, as_of: datetime, principal: Principal
    ) -> dict[str, Any]:
        """The targets as they stood at `as_of` that the principal sees: each with its history
        up to then; a team's with `allocated` (Σ of its reps' targets of the same period and
        metric) and `unallocated` (the rest; negative when more is allocated than set)."""
        shown: list[dict[str, Any]] = []
        for target in self._load(self._index().find(period, scope)):
            changes = target.as_of(as_of)
            if not changes:
                continue
            key, now = target.key, changes[-1]
            if not sees_target(principal, key.scope, key.scope_id, now.team_id):
                continue
            item = {**_key_fields(target), **_value(now), "history": _history(changes)}
            if key.scope is TargetScope.TEAM:
                allocated = self._allocated(key, as_of)
                item["allocated"] = _amount(allocated)
                item["unallocated"] = _amount(now.value - allocated)
            shown.append(item)
        shown.sort(
            key=lambda t: (t["period"], _SCOPE_ORDER[t["scope"]], t["scope_id"], t["metric"])
        )
        return {"as_of": as_of.isoformat(), "targets": shown}

    def _allocated(self, team: TargetKey, as_of: datetime) -> Decimal:
        total = Decimal(0)
        for rep in self._load(self._index().find(team.period, TargetScope.REP.value, team.metric)):
            changes = rep.as_of(as_of)
            if changes and changes[-1].team_id == team.scope_id:
                total += changes[-1].value
        return total

    def _load(self, ids: list[UUID]) -> list[Target]:
        uow = UnitOfWork(self._app)
        return [t for t in (uow.find(i, Target) for i in ids) if t is not None]


def target_state(target: Target) -> dict[str, Any]:
    """The target as a command answers it: its value now, its version, its whole history."""
    return {
        **_key_fields(target),
        **_value(target.changes[-1]),
        "version": target.version,
        "history": _history(target.changes),
    }


def _key_fields(target: Target) -> dict[str, Any]:
    return dict(target.key.fields())


def _value(change: Change) -> dict[str, Any]:
    return {
        "value": _amount(change.value),
        "team_id": change.team_id,
        "set_at": change.occurred_at.isoformat(),
    }


def _history(changes: list[Change]) -> list[dict[str, Any]]:
    return [
        {
            "event_type": c.event_type,
            "value": _amount(c.value),
            "previous_value": None if c.previous_value is None else _amount(c.previous_value),
            "reason": c.reason,
            "actor": c.actor,
            "occurred_at": c.occurred_at.isoformat(),
        }
        for c in changes
    ]


def _amount(value: Decimal) -> str:
    """A value as text, without an exponent (`1E+3` is `1000`)."""
    return f"{value:f}"
