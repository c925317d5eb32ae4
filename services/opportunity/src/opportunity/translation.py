"""Domain events ⇄ contract envelopes: the one module that knows both sides."""

from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import DomainEventProtocol

from contracts.envelope import Envelope, event_id_for
from contracts.opportunity import PAYLOADS

SCHEMA_VERSION = 1

_NOT_PAYLOAD = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "at", "actor", "id"}
)
# Events whose one domain argument is a dict that the contract spreads into the payload.
_SPREAD = {
    "KeyPersonAdded": "person",
    "CompetitorRecorded": "competitor",
    "DocumentAttached": "document",
}


def event_type(domain_event: object) -> str:
    return type(domain_event).__name__


def envelope_of(domain_event: DomainEventProtocol[Any]) -> Envelope:
    """The SPEC §3.1 envelope of a recorded Opportunity event."""
    name = event_type(domain_event)
    attributes = vars(domain_event)
    payload = {k: v for k, v in attributes.items() if k not in _NOT_PAYLOAD}
    if name in _SPREAD:
        payload = dict(payload[_SPREAD[name]])
    contract = PAYLOADS[name].model_validate(payload)
    opportunity_id = str(domain_event.originator_id)
    version = domain_event.originator_version
    return Envelope(
        event_id=event_id_for(opportunity_id, version),
        event_type=name,
        schema_version=SCHEMA_VERSION,
        opportunity_id=opportunity_id,
        version=version,
        occurred_at=_aware(attributes["at"]),
        recorded_at=_aware(attributes["timestamp"]),
        actor=attributes["actor"],
        payload=contract.model_dump(mode="json"),
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
