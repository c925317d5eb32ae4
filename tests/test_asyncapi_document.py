"""The AsyncAPI document `oppstream contracts export` writes is valid against the official
AsyncAPI 3.0.0 JSON Schema (vendored: tests/schemas/README.md), and the check would see a
broken one."""

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from contracts.export import export

SCHEMA = Path(__file__).resolve().parent / "schemas/asyncapi-3.0.0.json"


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    export(tmp_path)
    found: dict[str, Any] = json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8"))
    return found


def test_the_exported_asyncapi_document_is_valid(
    validator: Draft7Validator, document: dict[str, Any]
) -> None:
    problems = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]
    assert problems == []


def test_a_document_with_a_broken_channel_is_refused(
    validator: Draft7Validator, document: dict[str, Any]
) -> None:
    channel = next(iter(document["channels"]))
    document["channels"][channel]["address"] = 42
    document["operations"]["unknown"] = {"action": "shout"}
    assert not validator.is_valid(document)
