"""JSON Schemas of every message and of the rules file, and the AsyncAPI document of the topics."""

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from contracts import topics
from contracts.commands import CreateRenewalCommand, ReclaimCommand
from contracts.competitions import COMPETITION_PAYLOADS
from contracts.customer_record import CUSTOMER_PAYLOADS
from contracts.envelope import Envelope
from contracts.leads import QualifiedLead, RejectedLead
from contracts.opportunity import PAYLOADS, OpportunityWon
from contracts.reminders import Reminder
from contracts.rules import Rulebook
from contracts.targets import TARGET_PAYLOADS

# Serialization: the schemas describe the bytes our producers put on the wire (amounts as
# decimal strings, SPEC §3); our consumers accept those and are more lenient besides.
MODE: JsonSchemaMode = "serialization"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Bump when a topic or message is added or a message gains a field; nothing is renamed or
# removed (SPEC).
ASYNCAPI_VERSION = "1.0.0"
KAFKA_BINDING_VERSION = "0.5.0"

# Headers of a record on the DLQ: the refused value is kept byte for byte, the why goes here.
DLQ_HEADERS: dict[str, str] = {
    "x-error": "why the record was refused, in one line",
    "x-error-field": "dotted path of the first invalid field; absent when the value is not "
    "JSON or not an object",
    "x-source-topic": "the topic the record was read from",
    "x-source-partition": "its partition, as decimal text",
    "x-source-offset": "its offset, as decimal text",
}

MESSAGES: tuple[tuple[str, type[BaseModel]], ...] = (
    ("Envelope.v1", Envelope),
    ("OpportunityWon.v1", OpportunityWon),
    ("QualifiedLead.v1", QualifiedLead),
    ("RejectedLead.v1", RejectedLead),
    ("Reminder.v1", Reminder),
    ("ReclaimCommand.v1", ReclaimCommand),
    ("CreateRenewalCommand.v1", CreateRenewalCommand),
)


# Every event type on the events topic: the opportunities', the customer records', the
# targets' and the competitions'.
EVENT_PAYLOADS: dict[str, type[BaseModel]] = {
    **PAYLOADS,
    **CUSTOMER_PAYLOADS,
    **TARGET_PAYLOADS,
    **COMPETITION_PAYLOADS,
}


def export(directory: Path) -> list[Path]:
    """Write the schemas and `asyncapi.json` under `directory`; return the paths, sorted."""
    documents: dict[str, Any] = {f"{name}.schema.json": _schema(model) for name, model in MESSAGES}
    for event_type, payload in EVENT_PAYLOADS.items():
        name = f"events/{event_type}.v{payload_version(payload)}.schema.json"
        documents[name] = _schema(payload)
    documents["Rulebook.schema.json"] = _schema(Rulebook)
    documents["asyncapi.json"] = asyncapi()
    written = []
    for name, document in documents.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(document))
        written.append(path)
    return sorted(written)


def render(document: Any) -> bytes:
    """The one byte-exact form of a generated document, so a committed copy can be compared."""
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def payload_version(payload: type[BaseModel]) -> int:
    """The schema version a payload class carries in its name (`StageAdvancedV1` → 1)."""
    match = re.search(r"V(\d+)$", payload.__name__)
    if match is None:
        raise ValueError(f"payload class {payload.__name__} does not end in its version, e.g. V1")
    return int(match.group(1))


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, **model.model_json_schema(mode=MODE)}


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every topic, seen from the opportunity service."""
    models: list[type[BaseModel]] = [model for _, model in MESSAGES]
    models += EVENT_PAYLOADS.values()
    _, definitions = models_json_schema(
        [(model, MODE) for model in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = definitions["$defs"]
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def add(
        topic: str,
        description: str,
        found: dict[str, dict[str, Any]],
        action: str | None,
        summary: str,
    ) -> None:
        channel_id = _channel_id(topic)
        messages.update(found)
        channels[channel_id] = {
            "address": topic,
            "description": description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in sorted(found)},
        }
        if action is not None:
            operations[f"{action}_{channel_id}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [
                    {"$ref": f"#/channels/{channel_id}/messages/{name}"} for name in sorted(found)
                ],
                "summary": summary,
            }

    by_opportunity = "opportunity id"
    add(
        topics.OPPORTUNITY_EVENTS,
        "Every event recorded for an opportunity, in an envelope, in per-opportunity order, "
        "at least once. `version` rises by exactly one per opportunity; a redelivery carries "
        "the same `event_id`. The payload's schema is chosen by `event_type` and "
        "`schema_version`, one message below per event type. Consumers must skip event "
        "types they do not know. The customer records' events (`Customer…`, SPEC §8.1), the "
        "targets' (`Target…`, §9.1) and the competitions' (`Competition…`, §9.2) travel here "
        "too, keyed and enveloped by their own aggregate's id.",
        {
            **{
                f"{event_type}Event": _event_message(event_type, payload, by_opportunity)
                for event_type, payload in PAYLOADS.items()
            },
            **{
                f"{event_type}Event": _event_message(event_type, payload, "customer record id")
                for event_type, payload in CUSTOMER_PAYLOADS.items()
            },
            **{
                f"{event_type}Event": _event_message(event_type, payload, "target id")
                for event_type, payload in TARGET_PAYLOADS.items()
            },
            **{
                f"{event_type}Event": _event_message(event_type, payload, "competition record id")
                for event_type, payload in COMPETITION_PAYLOADS.items()
            },
        },
        "send",
        "The relay publishes each recorded event after it is durable in the event store.",
    )
    add(
        topics.OPPORTUNITY_WON,
        "One message per won opportunity, for the order system (at least once; a "
        "redelivery carries the same `event_id`).",
        {"OpportunityWon": _message("OpportunityWon", OpportunityWon, by_opportunity)},
        "send",
        "Published when an opportunity is won.",
    )
    add(
        topics.OPPORTUNITY_COMMANDS,
        "What other services ask the opportunity service to do. A reclaim is carried out only "
        "if the opportunity has not progressed since `based_on_version`; a renewal is "
        "created once whatever the redeliveries.",
        {
            "ReclaimCommand": _message("ReclaimCommand", ReclaimCommand, by_opportunity),
            "CreateRenewalCommand": _message(
                "CreateRenewalCommand",
                CreateRenewalCommand,
                "opportunity id (the won one to renew)",
            ),
        },
        "receive",
        "Commands from the reminders service: reclaim, create_renewal.",
    )
    add(
        topics.LEADS_QUALIFIED,
        "Qualified leads from the lead service. Each creates at most one opportunity, "
        "whatever the redeliveries.",
        {"QualifiedLead": _message("QualifiedLead", QualifiedLead, "lead id")},
        "receive",
        "Intake: each qualified lead becomes an opportunity, a rejection or a DLQ record.",
    )
    add(
        topics.LEADS_QUALIFIED_DLQ,
        f"Records read from `{topics.LEADS_QUALIFIED}` that are not a valid message, kept "
        "byte for byte with the error in headers; the intake consumer goes on past them.",
        {"RefusedRecord": _refused_record_message("qualified lead", "lead id")},
        "send",
        "Intake parks a record it cannot read.",
    )
    add(
        topics.OPPORTUNITY_COMMANDS_DLQ,
        f"Records read from `{topics.OPPORTUNITY_COMMANDS}` that are not a valid command, kept "
        "byte for byte with the error in headers; the command consumer goes on past them.",
        {"RefusedRecord": _refused_record_message("command", "opportunity id")},
        "send",
        "The command consumer parks a record it cannot read.",
    )
    add(
        topics.LEADS_REJECTED,
        "Our answer to a lead that duplicates an active opportunity or is invalid.",
        {"RejectedLead": _message("RejectedLead", RejectedLead, "lead id")},
        "send",
        "Intake answers a lead it does not turn into an opportunity.",
    )
    add(
        topics.REMINDERS,
        "Reminders, alerts, revisits and reclamation notices, sent by the reminders service "
        "to reps and managers; at most one per (opportunity, rule, due time). The "
        "opportunity service neither sends nor receives them.",
        {"Reminder": _message("Reminder", Reminder, by_opportunity)},
        None,
        "",
    )
    missing = set(topics.ALL) - {channel["address"] for channel in channels.values()}
    if missing:
        raise ValueError(f"no AsyncAPI channel for topics {sorted(missing)}")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "oppstream",
            "version": ASYNCAPI_VERSION,
            "description": "Kafka topics of oppstream, the event-sourced opportunity management "
            "system, as the opportunity service sees them. Values are UTF-8 JSON; times are "
            "RFC 3339 with an offset; amounts are decimal strings; ids are strings.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _channel_id(topic: str) -> str:
    # AsyncAPI keys allow no dots; the address keeps the real topic name.
    return topic.replace(".", "_")


def _kafka_key(description: str) -> dict[str, Any]:
    return {
        "kafka": {
            "bindingVersion": KAFKA_BINDING_VERSION,
            "key": {"type": "string", "description": f"record key: {description}"},
        }
    }


def _message(name: str, model: type[BaseModel], key: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": model.__name__,
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "bindings": _kafka_key(key),
    }


def _event_message(event_type: str, payload: type[BaseModel], key: str) -> dict[str, Any]:
    version = payload_version(payload)
    return {
        "name": event_type,
        "title": f"{event_type} v{version}",
        "summary": f"The envelope with event_type {event_type!r}, schema_version {version}.",
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/Envelope"},
                {
                    "type": "object",
                    "properties": {
                        "event_type": {"const": event_type},
                        "schema_version": {"const": version},
                        "payload": {"$ref": f"#/components/schemas/{payload.__name__}"},
                    },
                },
            ]
        },
        "bindings": _kafka_key(key),
    }


def _refused_record_message(what: str, key: str) -> dict[str, Any]:
    return {
        "name": "RefusedRecord",
        "title": "Refused record",
        "summary": f"A record that is not a valid {what}, with the error in headers.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": ["x-error"],
            "properties": {
                name: {"type": "string", "description": description}
                for name, description in DLQ_HEADERS.items()
            },
        },
        "payload": {
            "type": "string",
            "format": "binary",
            "description": "the refused record's value, unchanged",
        },
        "bindings": _kafka_key(f"the refused record's key, unchanged (normally the {key})"),
    }
