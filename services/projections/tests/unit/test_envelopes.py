"""The consumer's envelope reading gives the contract's verdict (`contracts.envelope.Envelope`)."""

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from contracts.envelope import Envelope
from projections.envelopes import Event, Poison, decode
from services.projections.tests.history import History, day


def valid() -> dict[str, Any]:
    return dict(History(day(0)).advance("requirements", day(1)).envelopes[1])


def test_a_valid_envelope_reads_as_the_contract_reads_it() -> None:
    envelope = valid()

    event = decode(orjson.dumps(envelope))
    model = Envelope.model_validate(envelope)

    assert isinstance(event, Event)
    assert (event.event_id, event.event_type, event.version, event.actor) == (
        model.event_id,
        model.event_type,
        model.version,
        model.actor,
    )
    assert (event.occurred_at, event.recorded_at, event.payload) == (
        model.occurred_at,
        model.recorded_at,
        model.payload,
    )


def test_offsets_are_read_and_extra_fields_ignored() -> None:
    envelope = valid() | {"occurred_at": "2026-03-03T09:00:00+08:00", "trace": "x"}

    event = decode(orjson.dumps(envelope))

    assert isinstance(event, Event)
    assert event.occurred_at == Envelope.model_validate(envelope).occurred_at
    assert event.occurred_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": None}, "event_id"),
        ({"version": 0}, "version"),
        ({"version": "2"}, "version"),
        ({"schema_version": 0}, "schema_version"),
        ({"payload": []}, "payload"),
        ({"occurred_at": "2026-03-03T09:00:00"}, "occurred_at"),
        ({"occurred_at": "last monday"}, "occurred_at"),
        ({"actor": 7}, "actor"),
    ],
)
def test_what_the_contract_refuses_is_poison_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    envelope = valid() | change

    found = decode(orjson.dumps(envelope))

    assert isinstance(found, Poison)
    assert field in found.error
    with pytest.raises(ValidationError):
        Envelope.model_validate_json(orjson.dumps(envelope), strict=True)


def test_a_missing_field_or_a_non_object_is_poison() -> None:
    envelope = valid()
    del envelope["opportunity_id"]

    assert "opportunity_id" in str(decode(orjson.dumps(envelope)))
    assert isinstance(decode(b"[1, 2]"), Poison)
    assert isinstance(decode(b"\xff\xfe"), Poison)
    assert isinstance(decode(None), Poison)
