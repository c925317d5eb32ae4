"""Records that are not a message: kept byte for byte on a DLQ, with the error in headers."""

from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from pydantic import ValidationError


class ConsumedRecord(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Poison:
    error: str
    field: str | None = None


def json_object(value: bytes | None) -> dict[str, Any] | Poison:
    """The record's value as a JSON object, or why it is not one."""
    if value is None:
        return Poison("the record has no value")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Poison(f"not UTF-8 JSON: {exc}")
    if not isinstance(data, dict):
        return Poison(f"not a JSON object but {type(data).__name__}")
    return data


def first_problem(error: ValidationError) -> tuple[str, str]:
    """(dotted field path, message) of a validation error's first problem."""
    problem = error.errors()[0]
    field = ".".join(str(part) for part in problem["loc"]) or "(message)"
    return field, f"{field}: {problem['msg']}"


def dlq_headers(record: ConsumedRecord, poison: Poison) -> dict[str, str]:
    headers = {
        "x-error": poison.error.replace("\n", " ")[:1000],
        "x-source-topic": record.topic,
        "x-source-partition": str(record.partition),
        "x-source-offset": str(record.offset),
    }
    if poison.field is not None:
        headers["x-error-field"] = poison.field
    return headers
