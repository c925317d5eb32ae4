"""Events as the projections read them: an envelope (SPEC §3.1), or why a record is not one.

The consumer reads tens of thousands of envelopes a second, so this checks the contract's
rules itself (required fields, their JSON types, versions from 1, instants with an offset)
on orjson's output rather than through the pydantic model; the contract tests hold the two
to the same verdicts.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson


@dataclass(slots=True)
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


class NotAnEnvelope(ValueError):
    """What is wrong with a message that should be an envelope, naming the field."""


def decode(value: bytes | str | None) -> Event | Poison:
    """A record's value as an event, or why it is not one."""
    if value is None:
        return Poison("the record has no value")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Poison(f"not UTF-8 JSON: {exc}")
    try:
        return from_json(data)
    except NotAnEnvelope as exc:
        return Poison(f"not an envelope: {exc}")


def from_json(data: Any) -> Event:
    """An envelope already parsed from JSON; NotAnEnvelope says what is wrong with it."""
    if not isinstance(data, dict):
        raise NotAnEnvelope(f"(message): a JSON object is expected, not {type(data).__name__}")
    payload = _field(data, "payload", dict)
    return Event(
        event_id=_field(data, "event_id", str),
        event_type=_field(data, "event_type", str),
        schema_version=_positive(data, "schema_version"),
        opportunity_id=_field(data, "opportunity_id", str),
        version=_positive(data, "version"),
        occurred_at=_instant(data, "occurred_at"),
        recorded_at=_instant(data, "recorded_at"),
        actor=_field(data, "actor", str),
        payload=payload,
    )


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    try:
        value = data[name]
    except KeyError:
        raise NotAnEnvelope(f"{name}: Field required") from None
    if not isinstance(value, kind):
        raise NotAnEnvelope(f"{name}: a {kind.__name__} is expected, not {type(value).__name__}")
    return value


def _positive(data: dict[str, Any], name: str) -> int:
    value = _field(data, name, int)
    if isinstance(value, bool) or value < 1:
        raise NotAnEnvelope(f"{name}: an integer from 1 is expected, not {value!r}")
    return int(value)


def _instant(data: dict[str, Any], name: str) -> datetime:
    text = _field(data, name, str)
    shown = repr(text[:64]) + ("…" if len(text) > 64 else "")
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise NotAnEnvelope(f"{name}: {shown} is not an RFC 3339 instant") from None
    if found.tzinfo is None or found.utcoffset() is None:
        raise NotAnEnvelope(f"{name}: {shown} has no offset (timezone)")
    try:
        return found if found.tzinfo is UTC else found.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before year 1 in UTC
        raise NotAnEnvelope(f"{name}: {shown} is out of range in UTC") from None
