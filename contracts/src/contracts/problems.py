"""The body of a refused HTTP request, as every service answers it (SPEC §4), for `responses=`.

A 422 keeps FastAPI's own list of fields (`{"detail": [{"loc", "msg", "type"}]}`); every
other refusal answers `{"detail": {"error", "message", …}}` with the facts of the rule."""

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: str = Field(min_length=1, description="what kind of refusal, e.g. not_found")
    message: str = Field(min_length=1, description="one sentence for a person")
    rule: str | None = Field(default=None, description="the rule a 403 or 409 enforces")
    field: str | None = Field(default=None, description="the parameter the refusal is about")


class Refused(BaseModel):
    detail: Problem


# A 503 says when to ask again (SPEC §7: a store that cannot be reached).
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before sending the request again",
        "schema": {"type": "integer"},
    }
}


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that may refuse with these statuses."""
    return {
        status: {
            "model": Refused,
            "description": HTTPStatus(status).phrase,
            **({"headers": RETRY_AFTER} if status == 503 else {}),
        }
        for status in statuses
    }
