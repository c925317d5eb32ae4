"""Stored events ⇄ contract envelopes (SPEC §3.1): the one module that knows both. The events
of opportunities, customer records (SPEC §8.1), targets and competitions (SPEC §9) travel the
same way; the envelope of any of the others names its aggregate's id as `opportunity_id`.

It reads the stored JSON directly, without rebuilding domain objects, because the relay
translates every event the service ever records; the contract tests check that every
envelope it makes validates against `contracts.envelope.Envelope` and the payload models.
"""

import functools
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent

from contracts.envelope import event_id_for
from opportunity.domain.competition import Competition
from opportunity.domain.customer_record import CustomerRecord
from opportunity.domain.opportunity import Opportunity
from opportunity.domain.target import Target

SCHEMA_VERSION = 1
# The aggregates whose events travel on the events topic, as their topics name them.
_EVENTS_OF = tuple(f"{a.__qualname__}." for a in (Opportunity, CustomerRecord, Target, Competition))

_NOT_PAYLOAD = frozenset({"timestamp", "originator_topic", "at", "actor", "id"})
# Events whose one domain argument is a dict that the contract spreads into the payload.
_SPREAD = {
    "KeyPersonAdded": "person",
    "CompetitorRecorded": "competitor",
    "DocumentAttached": "document",
    "CompetitionDefined": "definition",
}
# eventsourcing's JSON transcodings, as the plain JSON values of the contracts.
_TRANSCODED = {"datetime_iso", "decimal_str", "date_iso"}
_NESTED = (dict, list)


@functools.lru_cache(maxsize=1024)  # a service records events of a few dozen topics
def event_type_of(topic: str) -> str:
    """The event's name in its stored topic, `<module>:Opportunity.<name>` (or
    `<module>:CustomerRecord.<name>`, `Target.`, `Competition.`), whichever module recorded it
    (stored_topics.py): read from the class's qualified name, never the module's dotted path."""
    _, colon, qualname = topic.partition(":")
    prefix = next((p for p in _EVENTS_OF if qualname.startswith(p)), None)
    name = qualname.removeprefix(prefix) if prefix else ""
    if not colon or not name or "." in name:
        raise ValueError(f"{topic!r} is not the topic of an event on the events topic")
    return name


def envelope_of(stored: StoredEvent) -> dict[str, Any]:
    """The envelope of a recorded event of an aggregate on the events topic, as JSON-ready
    values."""
    state = _plain(orjson.loads(stored.state))
    name = event_type_of(stored.topic)
    payload = {k: v for k, v in state.items() if k not in _NOT_PAYLOAD}
    if name in _SPREAD:
        payload = payload[_SPREAD[name]]
    opportunity_id = str(stored.originator_id)
    return {
        "event_id": event_id_for(opportunity_id, stored.originator_version),
        "event_type": name,
        "schema_version": SCHEMA_VERSION,
        "opportunity_id": opportunity_id,
        "version": stored.originator_version,
        "occurred_at": state["at"],
        "recorded_at": state["timestamp"],
        "actor": state["actor"],
        "payload": payload,
    }


def won_message(won: dict[str, Any], opportunity: Opportunity) -> dict[str, Any]:
    """`crm.opportunity.won` (SPEC §3.2) from the OpportunityWon envelope and the state it
    closed (nothing about a won opportunity can change after the win)."""
    customer = opportunity.customer
    payload = won["payload"]
    return {
        "event_id": won["event_id"],
        "opportunity_id": won["opportunity_id"],
        "type": opportunity.type,
        "customer": {k: customer[k] for k in ("uscc", "name", "tier", "ownership")},
        "owner_id": opportunity.owner_id,
        "team_id": opportunity.team_id,
        "amount": payload["amount"],
        "currency": payload["currency"],
        "contract_ref": payload["contract_ref"],
        "contract_start_on": payload["contract_start_on"],
        "contract_end_on": payload["contract_end_on"],
        "won_at": won["occurred_at"],
    }


def _plain(value: Any) -> Any:
    """`value` (freshly decoded, so changed in place) with its transcoded values plain."""
    if isinstance(value, dict):
        kind = value.get("_type_")
        if kind is not None and len(value) == 2 and "_data_" in value:
            data = value["_data_"]
            if kind in _TRANSCODED:
                return data
            if kind == "uuid_hex":
                return str(UUID(data))
            raise ValueError(f"unknown transcoding {kind!r} in a stored event")
        for k, v in value.items():
            if isinstance(v, _NESTED):
                value[k] = _plain(v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, _NESTED):
                value[i] = _plain(v)
    return value
