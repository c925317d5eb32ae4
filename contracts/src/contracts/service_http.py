"""What every service's HTTP side shares besides its own routes: the FastAPI application,
the probes (`/healthz`, `/readyz`, `/metrics`), JSON rendered by orjson, and who a bearer
token belongs to."""

import inspect
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from contracts.exposition import exposition

KAFKA_NOT_CONFIGURED = "not configured (OPPSTREAM_KAFKA_BOOTSTRAP unset)"

# Whether the service is ready, and what it found out on the way.
Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

TokenHolder = TypeVar("TokenHolder")


class Answer(JSONResponse):
    """A JSON answer rendered by orjson (several times faster than the standard library)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Unauthenticated(Exception):
    """No bearer token, or one no principal has (HTTP 401)."""


async def unauthenticated(_: Request, exc: Exception) -> Answer:
    """The answer to `Unauthenticated`, for `FastAPI.add_exception_handler`."""
    return Answer(
        {"detail": {"error": "unauthenticated", "message": str(exc)}},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def new_service(
    name: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> FastAPI:
    """The FastAPI application of the oppstream `name` service; `Unauthenticated` (raised by
    `bearer_principal`) answers 401."""
    service = FastAPI(
        # Our own Prometheus metrics; FastAPI's OpenTelemetry checks cost CPU per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title=f"oppstream {name} service",
        version="1",
        description=description,
        lifespan=lifespan,
    )
    service.add_exception_handler(Unauthenticated, unauthenticated)
    return service


def bearer_principal(
    find: Callable[[str], TokenHolder | None],
) -> Callable[..., Awaitable[TokenHolder]]:
    """A dependency: the principal `find` says holds the request's bearer token; else
    `Unauthenticated`."""
    bearer = HTTPBearer(auto_error=False)

    async def authenticate(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> TokenHolder:
        if credentials is None:
            raise Unauthenticated("send Authorization: Bearer <token>")
        found = find(credentials.credentials)
        if found is None:
            raise Unauthenticated("the Bearer token belongs to no principal")
        return found

    return authenticate


def probes(
    readiness: Readiness,
    registry: CollectorRegistry,
    before_scrape: Callable[[], Awaitable[None]] | None = None,
) -> APIRouter:
    """`/healthz`, `/readyz` (503 until `readiness` says ready; its docstring says what
    ready means) and `/metrics` (the registry, after `before_scrape` brought it up to date)."""
    router = APIRouter()

    @router.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "Not ready"}},
        description=inspect.cleandoc(readiness.__doc__ or ""),
    )
    async def readyz() -> Answer:
        ready, detail = await readiness()
        return Answer(
            {"status": "ready" if ready else "unavailable", **detail},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        if before_scrape is not None:
            await before_scrape()
        return Response(exposition(registry), media_type=CONTENT_TYPE_LATEST)

    return router
