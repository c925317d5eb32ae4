"""What lead intake makes of a record's bytes: a lead, an invalid lead to answer, or poison."""

from typing import Any

import orjson
import pytest
from stdnum.cn import uscc as stdnum_uscc

from contracts.leads import QualifiedLead
from opportunity.adapters.poison import Poison
from opportunity.entrypoints.lead_intake import Invalid, read_lead

_BODY = "91110000MA01ABCDX"  # 17 characters; the 18th is the GB 32100-2015 check character
VALID_USCC = _BODY + stdnum_uscc.calc_check_digit(_BODY)


def lead(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "lead_id": "lead-42",
        "qualified_at": "2026-11-28T09:00:00+08:00",
        "customer": {"uscc": VALID_USCC, "name": "ACME", "tier": "KA", "ownership": "SOE"},
        "owner_id": "rep-1",
        "team_id": "east",
        "expected_amount": "120000.00",
        "currency": "CNY",
    }
    message.update(changes)
    return message


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"\xff\xfe not utf-8",
        b"{not json",
        b"[1, 2, 3]",
        b'"a string"',
        b"42",
        b"null",
    ],
    ids=["no-value", "empty", "not-utf8", "broken-json", "array", "string", "number", "null"],
)
def test_bytes_that_are_no_json_object_are_poison(value: bytes | None) -> None:
    assert isinstance(read_lead(value), Poison)


@pytest.mark.parametrize(
    "lead_id", [None, "", 42, ["lead-1"]], ids=["absent", "empty", "number", "list"]
)
def test_an_object_without_a_usable_lead_id_is_poison_naming_lead_id(lead_id: object) -> None:
    message = lead(lead_id=lead_id)
    if lead_id is None:
        del message["lead_id"]
    read = read_lead(orjson.dumps(message))
    assert isinstance(read, Poison)
    assert read.field == "lead_id"


def test_a_lead_with_a_wrong_uscc_check_character_is_invalid_naming_customer_uscc() -> None:
    wrong = VALID_USCC[:17] + ("0" if VALID_USCC[17] != "0" else "1")
    message = lead(customer={**lead()["customer"], "uscc": wrong})
    read = read_lead(orjson.dumps(message))
    assert isinstance(read, Invalid)
    assert read.lead_id == "lead-42"
    assert read.field == "customer.uscc"
    assert "customer.uscc" in read.detail


def test_a_lead_missing_a_required_field_is_invalid_naming_it() -> None:
    message = lead()
    del message["qualified_at"]
    read = read_lead(orjson.dumps(message))
    assert isinstance(read, Invalid)
    assert read.field == "qualified_at"


def test_a_valid_lead_is_read_as_a_qualified_lead() -> None:
    read = read_lead(orjson.dumps(lead(unknown_field="tolerated")))
    assert isinstance(read, QualifiedLead)
    assert read.lead_id == "lead-42"
    assert read.customer.uscc == VALID_USCC
    assert str(read.expected_amount) == "120000.00"
