"""Events as the projections read them: an envelope (SPEC §3.1) checked against the contract,
or the reason a record is not one."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from contracts.envelope import Envelope


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    event_type: str
    schema_version: int
    opportunity_id: str
    version: int
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    payload: dict[str, Any]

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "event_id": self.event_id,
                "event_type": self.event_type,
                "schema_version": self.schema_version,
                "opportunity_id": self.opportunity_id,
                "version": self.version,
                "occurred_at": self.occurred_at.isoformat(),
                "recorded_at": self.recorded_at.isoformat(),
                "actor": self.actor,
                "payload": self.payload,
            }
        ).decode()


@dataclass(frozen=True)
class Poison:
    error: str


def _event(envelope: Envelope) -> Event:
    return Event(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        schema_version=envelope.schema_version,
        opportunity_id=envelope.opportunity_id,
        version=envelope.version,
        occurred_at=envelope.occurred_at.astimezone(UTC),
        recorded_at=envelope.recorded_at.astimezone(UTC),
        actor=envelope.actor,
        payload=envelope.payload,
    )


def decode(value: bytes | str | None) -> Event | Poison:
    """A record's value as an event, or why it is not one."""
    if value is None:
        return Poison("the record has no value")
    try:
        return _event(Envelope.model_validate_json(value))
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "(message)"
        return Poison(f"not an envelope: {field}: {problem['msg']}")


def from_json(data: dict[str, Any]) -> Event:
    """An envelope already parsed from JSON (the notification feed); ValidationError if bad."""
    return _event(Envelope.model_validate(data))
