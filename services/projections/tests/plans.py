"""Envelopes of a target's and a competition's events (SPEC §9), as the opportunity service
emits them on the events topic, each checked against the contract."""

from datetime import datetime
from typing import Any

from contracts.competitions import COMPETITION_PAYLOADS, competition_record_id
from contracts.targets import TARGET_PAYLOADS, target_id_for
from services.projections.tests.history import envelope_of


class Aggregate:
    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.envelopes: list[dict[str, Any]] = []

    def emit(self, event_type: str, at: datetime, payload: dict[str, Any], actor: str) -> None:
        envelope = envelope_of(self.id, len(self.envelopes) + 1, event_type, at, payload, actor)
        (TARGET_PAYLOADS | COMPETITION_PAYLOADS)[event_type].model_validate(payload)
        self.envelopes.append(envelope)


class TargetHistory(Aggregate):
    """One target: `set` its first value (allocated, for a rep), then `adjust` it."""

    def __init__(
        self, period: str, scope: str, scope_id: str, metric: str, team_id: str | None = None
    ) -> None:
        super().__init__(target_id_for(period, scope, scope_id, metric))
        self.key = {"period": period, "scope": scope, "scope_id": scope_id, "metric": metric}
        self.team_id = team_id
        self.value: str | None = None

    def set(self, at: datetime, value: str, actor: str = "manager-east") -> "TargetHistory":
        kind = "TargetAllocated" if self.key["scope"] == "rep" else "TargetSet"
        return self._change(kind, at, value, actor)

    def adjust(self, at: datetime, value: str, actor: str = "manager-east") -> "TargetHistory":
        return self._change("TargetAdjusted", at, value, actor)

    def _change(self, kind: str, at: datetime, value: str, actor: str) -> "TargetHistory":
        payload = {
            **self.key,
            "value": value,
            "previous_value": self.value,
            "reason": "plan",
            "team_id": self.team_id,
        }
        self.emit(kind, at, payload, actor)
        self.value = value
        return self


class CompetitionHistory(Aggregate):
    def __init__(self, at: datetime, competition_id: str, **definition: Any) -> None:
        super().__init__(competition_record_id(competition_id))
        payload = {"competition_id": competition_id, "name": "春季冲刺", **definition}
        self.emit("CompetitionDefined", at, payload, "admin")
