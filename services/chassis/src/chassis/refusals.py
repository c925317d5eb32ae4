"""Refusals every service answers the same way (SPEC §11): a request body over the bound
(`OPPSTREAM_MAX_BODY_BYTES`) is refused with 413 before it is parsed, and FastAPI's 422 names
the field, the rule and the limit, never the value that was sent."""

from typing import Any

import orjson
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What a 422 keeps of pydantic's context: limits and allowed values, never the value itself.
KEPT_CONTEXT = frozenset(
    {
        "max_length",
        "min_length",
        "gt",
        "ge",
        "lt",
        "le",
        "multiple_of",
        "max_digits",
        "decimal_places",
        "whole_digits",
        "expected",
        "pattern",
    }
)


class BodyTooLarge(HTTPException):
    """A body found over the bound while it was read (one sent in chunks, without
    Content-Length). An HTTPException: FastAPI lets it through where it reads the body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")
        self.limit = limit


def _too_large(limit: int) -> Response:
    body = {
        "detail": {
            "error": "too_large",
            "message": f"the request body is over the limit of {limit} bytes",
            "limit": limit,
        }
    }
    return Response(orjson.dumps(body), status_code=413, media_type="application/json")


async def too_large(_: Request, exc: Exception) -> Response:
    """The answer to `BodyTooLarge`, for `FastAPI.add_exception_handler`."""
    assert isinstance(exc, BodyTooLarge)  # noqa: S101 - registered for BodyTooLarge only
    return _too_large(exc.limit)


class BoundedBodies:
    """ASGI middleware: a request whose Content-Length is over `limit` bytes is answered 413
    unread; one sent in chunks is counted as it is read and refused once over."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(self.limit)(scope, receive, send)
                return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, bounded, send)


def without_values(error: dict[str, Any]) -> dict[str, Any]:
    """One item of a 422's detail with what was sent left out: where, what rule, which limit."""
    item = {"loc": error["loc"], "msg": error["msg"], "type": error["type"]}
    context = {k: v for k, v in error.get("ctx", {}).items() if k in KEPT_CONTEXT}
    if context:
        item["ctx"] = jsonable_encoder(context)
    return item


async def invalid_request(_: Request, exc: Exception) -> Response:
    """The answer to `RequestValidationError`, for `FastAPI.add_exception_handler`."""
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
    body = {"detail": [without_values(error) for error in exc.errors()]}
    return Response(orjson.dumps(body), status_code=422, media_type="application/json")
