"""Taking records off a topic: what every consumer of the service shares, and records that
are not a message — kept byte for byte on a DLQ, with the error in headers."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka.errors import MessageSizeTooLargeError
from prometheus_client import Counter
from pydantic import ValidationError

from chassis.kafka.consuming import ConsumedRecord
from opportunity.adapters.publishing import Publisher

if TYPE_CHECKING:
    from opportunity.application.app import OpportunityApp
    from opportunity.application.group_commit import GroupCommitter


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


class RecordIntake:
    """What a consumer of records needs: the application, the group committer (its commands
    join the HTTP commands' transactions), a publisher, a clock and an outcome counter."""

    def __init__(
        self,
        app: "OpportunityApp",
        committer: "GroupCommitter",
        publisher: Publisher,
        clock: Callable[[], datetime],
        outcomes: Counter,
    ) -> None:
        self._app, self._committer, self._publisher = app, committer, publisher
        self._clock, self._outcomes = clock, outcomes

    async def park(self, dlq: str, record: ConsumedRecord, poison: Poison) -> None:
        """The record, unchanged, on the DLQ with why in its headers. A record the broker took
        at its size limit has no room for the headers: its copy goes without the value, which
        `x-source-*` still point to, rather than block the partition."""
        headers = dlq_headers(record, poison)
        value = record.value or b""
        try:
            await self._publisher.publish(dlq, record.key, value, headers)
        except MessageSizeTooLargeError:
            headers["x-value-dropped"] = f"{len(value)} bytes, too large to copy with headers"
            await self._publisher.publish(dlq, record.key, b"", headers)
        self._outcomes.labels("dlq").inc()
