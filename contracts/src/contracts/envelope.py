"""The envelope every event on `crm.opportunity.events` travels in (SPEC §3.1), and its reader."""

from datetime import UTC, datetime
from enum import StrEnum
from hashlib import sha1
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

EVENT_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://oppstream/events")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes


class RecordKind(StrEnum):
    """Whose events travel on `crm.opportunity.events`: the opportunities', and the customer
    records', targets' and competitions', told apart by the event type's first word (also for
    types a reader's version does not know yet); the envelope's `opportunity_id` holds the id of
    the aggregate that recorded the event."""

    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    TARGET = "target"
    COMPETITION = "competition"


_KIND_PREFIXES = (
    ("Customer", RecordKind.CUSTOMER),
    ("Target", RecordKind.TARGET),
    ("Competition", RecordKind.COMPETITION),
)


def kind_of(event_type: str) -> RecordKind:
    for prefix, kind in _KIND_PREFIXES:
        if event_type.startswith(prefix):
            return kind
    return RecordKind.OPPORTUNITY


def event_id_for(opportunity_id: str, version: int) -> str:
    """The same event always has the same id, so every redelivery carries it: the UUID
    version 5 of `<opportunity_id>/<version>` in EVENT_ID_NAMESPACE. Spelled out rather than
    `str(uuid5(...))`, which costs the relay more than the rest of an envelope."""
    name = f"{opportunity_id}/{version}".encode()
    digest = bytearray(sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = digest[6] & 0x0F | 0x50  # version 5
    digest[8] = digest[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str
    event_type: str
    schema_version: int = Field(ge=1)
    opportunity_id: str
    version: int = Field(ge=1, description="the aggregate's version; +1 per event")
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime
    actor: str
    payload: dict[str, Any]


class NotAnEnvelope(ValueError):
    """What is wrong with a value that should be an envelope; `field` names the field at fault
    (None when the value as a whole is: no value, no JSON, no object)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


_INSTANTS = ("occurred_at", "recorded_at")


def read_envelope(value: bytes | str | None) -> Envelope:
    """A record's value (UTF-8 JSON) as an envelope, judged strictly: each field of the JSON
    type §3.1 gives it (a version is a number, not "2"), versions from 1, instants with an
    offset that exist in UTC (year 1 at +01:00 does not), so that every consumer can compare
    and store them. Raises NotAnEnvelope naming the first field at fault."""
    if value is None:
        raise NotAnEnvelope("the record has no value")
    try:
        envelope = Envelope.model_validate_json(value, strict=True)
    except ValidationError as exc:
        problem = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        if problem["type"] == "json_invalid":
            reason = problem["msg"].removeprefix("Invalid JSON: ")
            raise NotAnEnvelope(f"not UTF-8 JSON: {reason}") from None
        field = ".".join(str(part) for part in problem["loc"]) or None
        raise NotAnEnvelope(
            f"not an envelope: {field or '(message)'}: {problem['msg']}", field
        ) from None
    for field in _INSTANTS:
        instant: datetime = getattr(envelope, field)
        if instant.year in (1, 9999):  # only there can an offset leave UTC's range
            try:
                instant.astimezone(UTC)
            except OverflowError:
                raise NotAnEnvelope(
                    f"not an envelope: {field}: the instant is out of range in UTC", field
                ) from None
    return envelope
