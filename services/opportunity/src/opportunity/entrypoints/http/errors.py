"""How the HTTP API answers a refusal (SPEC §4): each domain error with its precise status code,
and FastAPI's and Starlette's own refusals in the same JSON shape."""

from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException

from chassis.http import Answer
from opportunity.application.idempotency import KeyReused
from opportunity.application.unit_of_work import Conflict, NotFound, VersionMismatch
from opportunity.application.views import COMMAND_NAMES
from opportunity.domain.errors import (
    CommandNotAllowed,
    DefinitionConflict,
    DomainError,
    DuplicateOpportunity,
    InvalidValue,
    KeyPersonNotFound,
    OccurredAtRefused,
    PoolRuleBroken,
    RoleNotAllowed,
    StageRuleBroken,
)

STATUS_OF: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (KeyPersonNotFound, 404),
    (VersionMismatch, 412),
    (InvalidValue, 422),
    (OccurredAtRefused, 422),
    (RoleNotAllowed, 403),
    (CommandNotAllowed, 409),
    (StageRuleBroken, 409),
    (PoolRuleBroken, 409),
    (DuplicateOpportunity, 409),
    (Conflict, 409),
    (DefinitionConflict, 409),
]


class InvalidParameter(InvalidValue):
    """A header or query parameter the API refuses, naming where it is."""

    def __init__(self, field: str, message: str, location: str) -> None:
        super().__init__(field, message)
        self.location = location


def status_of(error: DomainError) -> int:
    return next((code for kind, code in STATUS_OF if isinstance(error, kind)), 409)


def error_body(error: DomainError) -> dict[str, Any]:
    field = error.facts.get("field")
    if field is not None:
        # A dotted field is a path into the body, named as FastAPI names one (`customer.tier`:
        # ["body", "customer", "tier"]); any other fact (a rule) goes with it.
        loc = [_location(error), *str(field).split(".")]
        others = {k: v for k, v in error.facts.items() if k != "field"}
        return {"detail": [{"loc": loc, "msg": error.message, "type": error.code, **others}]}
    if isinstance(error, CommandNotAllowed):
        error = _in_api_names(error)
    return {"detail": {"error": error.code, "message": error.message, **error.facts}}


def _location(error: DomainError) -> str:
    if isinstance(error, InvalidParameter):
        return error.location
    return "header" if isinstance(error, KeyReused) else "body"


def _in_api_names(error: CommandNotAllowed) -> CommandNotAllowed:
    """The refusal naming the commands as the API does (the aggregate names its methods)."""
    facts = error.facts
    allowed = cast(list[str], facts["allowed_commands"])
    return CommandNotAllowed(
        COMMAND_NAMES[str(facts["command"])],
        str(facts["status"]),
        [COMMAND_NAMES[c] for c in allowed],
    )


def install_error_handlers(api: FastAPI) -> None:
    async def domain_error(_: Request, exc: Exception) -> Answer:
        error = cast(DomainError, exc)
        return Answer(error_body(error), status_code=status_of(error))

    async def http_error(_: Request, exc: Exception) -> Answer:
        """FastAPI's and Starlette's own refusals (a body that is no JSON text, an unknown
        path or method), named like the service's."""
        error = cast(HTTPException, exc)
        code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_")
        return Answer(
            {"detail": {"error": code, "message": error.detail}},
            status_code=error.status_code,
            headers=error.headers,
        )

    api.add_exception_handler(DomainError, domain_error)
    api.add_exception_handler(HTTPException, http_error)
