"""`read_envelope` gives the contract's verdict on a record's value (`Envelope`, strict JSON),
and when it refuses one, says why, naming the field."""

import json
from typing import Any
from uuid import uuid4, uuid5

import pytest
from pydantic import ValidationError

from contracts.envelope import (
    EVENT_ID_NAMESPACE,
    Envelope,
    NotAnEnvelope,
    event_id_for,
    read_envelope,
)


def valid() -> dict[str, Any]:
    return {
        "event_id": event_id_for("opp-1", 2),
        "event_type": "StageAdvanced",
        "schema_version": 1,
        "opportunity_id": "opp-1",
        "version": 2,
        "occurred_at": "2026-03-03T01:00:00+00:00",
        "recorded_at": "2026-03-03T01:00:00.005000+00:00",
        "actor": "rep-1",
        "payload": {"from_stage": "initial_contact", "to_stage": "requirements"},
    }


def encoded(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode()


def refusal(value: bytes | str | None) -> NotAnEnvelope:
    with pytest.raises(NotAnEnvelope) as refused:
        read_envelope(value)
    return refused.value


def test_a_valid_envelope_reads_as_the_contract_reads_it() -> None:
    envelope = valid()

    read = read_envelope(encoded(envelope))
    model = Envelope.model_validate(envelope)

    assert (read.event_id, read.event_type, read.version, read.actor) == (
        model.event_id,
        model.event_type,
        model.version,
        model.actor,
    )
    assert (read.occurred_at, read.recorded_at, read.payload) == (
        model.occurred_at,
        model.recorded_at,
        model.payload,
    )
    assert read_envelope(encoded(envelope).decode()) == read


def test_offsets_are_read_and_extra_fields_ignored() -> None:
    envelope = valid() | {"occurred_at": "2026-03-03T09:00:00+08:00", "trace": "x"}

    read = read_envelope(encoded(envelope))

    assert read.occurred_at == Envelope.model_validate(envelope).occurred_at
    assert read.occurred_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": None}, "event_id"),
        ({"version": 0}, "version"),
        ({"version": "2"}, "version"),
        ({"version": True}, "version"),
        ({"schema_version": 0}, "schema_version"),
        ({"payload": []}, "payload"),
        ({"occurred_at": "2026-03-03T09:00:00"}, "occurred_at"),
        ({"occurred_at": "last monday"}, "occurred_at"),
        ({"occurred_at": 1772499600}, "occurred_at"),
        ({"actor": 7}, "actor"),
    ],
)
def test_what_the_contract_refuses_is_not_an_envelope_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    envelope = valid() | change

    found = refusal(encoded(envelope))

    assert found.field == field
    assert str(found).startswith(f"not an envelope: {field}: ")
    with pytest.raises(ValidationError):
        Envelope.model_validate_json(encoded(envelope), strict=True)


@pytest.mark.parametrize(
    ("field", "instant"),
    [("occurred_at", "0001-01-01T00:00:00+01:00"), ("recorded_at", "9999-12-31T23:59:59-01:00")],
)
def test_an_instant_out_of_range_in_utc_is_not_an_envelope(field: str, instant: str) -> None:
    found = refusal(encoded(valid() | {field: instant}))

    assert found.field == field
    assert "out of range in UTC" in str(found)


def test_a_missing_field_or_a_non_object_is_not_an_envelope() -> None:
    envelope = valid()
    del envelope["opportunity_id"]

    assert str(refusal(encoded(envelope))) == "not an envelope: opportunity_id: Field required"
    assert refusal(b"[1, 2]").field is None
    assert str(refusal(b"\xff\xfe")).startswith("not UTF-8 JSON: ")
    assert str(refusal(None)) == "the record has no value"


def test_event_id_is_the_uuid5_of_the_opportunity_and_version() -> None:
    for n in range(500):
        opportunity_id = str(uuid4()) if n % 2 else f"opp-{n}-客户"
        expected = str(uuid5(EVENT_ID_NAMESPACE, f"{opportunity_id}/{n}"))
        assert event_id_for(opportunity_id, n) == expected
