"""A target (SPEC §9.1): one per (period, scope, scope id, metric), its value and every change of
it. The first value of a company's or a team's target is set, of a rep's allocated (from the
rep's team); every later one is an adjustment naming the value before.

Public methods validate, then record; event bodies only assign, because they re-run on every
replay. Time and actor are passed in, never read here.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from contracts.targets import TargetEvent, TargetScope, parse_period, target_id_for
from opportunity.domain.errors import InvalidValue, OccurredAtRefused


@dataclass(frozen=True)
class TargetKey:
    """What a target is set for; `period` as the API names it (`2026`, `2026-Q4`, `2026-12`)."""

    period: str
    scope: TargetScope
    scope_id: str
    metric: str

    def __post_init__(self) -> None:
        try:
            parse_period(self.period)
        except ValueError as exc:
            raise InvalidValue("period", str(exc)) from None
        if not self.scope_id.strip():
            raise InvalidValue("scope_id", "a target names whom it is for")

    @property
    def id(self) -> UUID:
        return UUID(target_id_for(self.period, self.scope, self.scope_id, self.metric))

    def fields(self) -> dict[str, str]:
        return {
            "period": self.period,
            "scope": self.scope.value,
            "scope_id": self.scope_id,
            "metric": self.metric,
        }


@dataclass(frozen=True)
class Change:
    """One recorded value of a target: what the history shows."""

    event_type: str
    value: Decimal
    previous_value: Decimal | None
    reason: str | None
    team_id: str | None
    actor: str
    occurred_at: datetime


class Target(Aggregate):
    """A target's value as it stands, and every change of it, oldest first."""

    class TargetSet(Aggregate.Created):
        period: str
        scope: str
        scope_id: str
        metric: str
        value: Decimal
        previous_value: Decimal | None
        reason: str | None
        team_id: str | None
        at: datetime
        actor: str

    class TargetAllocated(TargetSet):
        pass

    def __init__(  # noqa: PLR0913 - the whole key and the first value travel in the first event
        self,
        period: str,
        scope: str,
        scope_id: str,
        metric: str,
        value: Decimal,
        previous_value: Decimal | None,
        reason: str | None,
        team_id: str | None,
        at: datetime,
        actor: str,
    ) -> None:
        self.key = TargetKey(period, TargetScope(scope), scope_id, metric)
        kind = TargetEvent.ALLOCATED if self.key.scope is TargetScope.REP else TargetEvent.SET
        self.changes = [Change(kind.value, value, None, reason, team_id, actor, at)]

    @classmethod
    def set_first(  # noqa: PLR0913 - the key, the value and who set it when
        cls,
        key: TargetKey,
        value: Decimal,
        reason: str | None,
        team_id: str | None,
        at: datetime,
        actor: str,
    ) -> "Target":
        """The target's first value: allocated when it is a rep's (`team_id`: the rep's team),
        else set."""
        _check_value(value)
        kind = cls.TargetAllocated if key.scope is TargetScope.REP else cls.TargetSet
        return cls._create(
            kind,
            id=key.id,
            **key.fields(),
            value=value,
            previous_value=None,
            reason=reason,
            team_id=team_id,
            at=at,
            actor=actor,
        )

    @property
    def value(self) -> Decimal:
        return self.changes[-1].value

    def adjust(
        self, value: Decimal, reason: str | None, team_id: str | None, at: datetime, actor: str
    ) -> bool:
        """A new value; whether one was recorded (the value it has already records nothing)."""
        _check_value(value)
        if at < self.changes[-1].occurred_at:
            raise OccurredAtRefused(
                f"occurred_at {at.isoformat()} is before the target's last change "
                f"({self.changes[-1].occurred_at.isoformat()})"
            )
        if value == self.value:
            return False
        self._adjusted(
            **self.key.fields(),
            value=value,
            previous_value=self.value,
            reason=reason,
            team_id=team_id,
            at=at,
            actor=actor,
        )
        return True

    def as_of(self, instant: datetime) -> list[Change]:
        """The changes that had occurred by `instant` (none: the target did not exist yet)."""
        return [change for change in self.changes if change.occurred_at <= instant]

    @event(TargetEvent.ADJUSTED.value)
    def _adjusted(  # noqa: PLR0913 - what the event records
        self,
        period: str,
        scope: str,
        scope_id: str,
        metric: str,
        value: Decimal,
        previous_value: Decimal | None,
        reason: str | None,
        team_id: str | None,
        at: datetime,
        actor: str,
    ) -> None:
        self._changed(TargetEvent.ADJUSTED, value, previous_value, reason, team_id, at, actor)

    def _changed(  # noqa: PLR0913 - one change's facts
        self,
        kind: TargetEvent,
        value: Decimal,
        previous_value: Decimal | None,
        reason: str | None,
        team_id: str | None,
        at: datetime,
        actor: str,
    ) -> None:
        change = Change(kind.value, value, previous_value, reason, team_id, actor, at)
        self.changes = [*self.changes, change]


def _check_value(value: Decimal) -> None:
    if not value.is_finite() or value < 0:
        raise InvalidValue("value", "a target's value is a number, not negative")
