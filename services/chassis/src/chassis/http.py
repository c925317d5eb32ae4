"""What every service's HTTP side shares besides its own routes: the FastAPI application,
the probes (`/healthz`, `/readyz`, `/metrics`), JSON rendered by orjson, the 401 and 403 of
`chassis.auth`, and the 503 of a store that cannot be reached (SPEC §7)."""

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

import orjson
import psycopg
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from chassis.auth import Forbidden, Unauthenticated
from chassis.exposition import exposition
from chassis.logs import RequestLog
from chassis.refusals import BodyTooLarge, BoundedBodies, invalid_request, too_large
from chassis.settings import OppstreamSettings
from chassis.sql.errors import unavailable, why

log = logging.getLogger(__name__)

KAFKA_NOT_CONFIGURED = "not configured (OPPSTREAM_KAFKA_BOOTSTRAP unset)"

# How long /readyz waits for one dependency: the probe answers within a second, whatever a
# store or the broker does meanwhile.
READINESS_SECONDS = 0.8
# The wait a 503 asks for: about what a service takes to notice a store is back (its
# connection pool tries again after 1 s, 2 s…).
RETRY_AFTER_SECONDS = 5
# The driver errors among which `unavailable` finds a store that cannot be reached.
DRIVER_ERRORS: tuple[type[Exception], ...] = (sa.exc.DBAPIError, sa.exc.TimeoutError, psycopg.Error)

# Whether the service is ready, and what it found out on the way.
Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

T = TypeVar("T")


class Answer(JSONResponse):
    """A JSON answer rendered by orjson (several times faster than the standard library)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def unauthenticated(_: Request, exc: Exception) -> Answer:
    """The answer to `Unauthenticated`, for `FastAPI.add_exception_handler`."""
    return Answer(
        {"detail": {"error": "unauthenticated", "message": str(exc)}},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def forbidden(_: Request, exc: Exception) -> Answer:
    """The answer to `Forbidden`, for `FastAPI.add_exception_handler`."""
    assert isinstance(exc, Forbidden)  # noqa: S101 - registered for Forbidden only
    return Answer({"detail": exc.detail}, status_code=403)


def store_unavailable(store: str) -> Callable[[Request, Exception], Awaitable[Answer]]:
    """The answer to an error of the store named `store`, for `FastAPI.add_exception_handler`:
    503 with `Retry-After` when the store cannot be reached (`unavailable`); any other error
    goes on to the 500 it always was."""

    async def answer(request: Request, exc: Exception) -> Answer:
        if not unavailable(exc):
            raise exc
        log.warning(
            "%s %s: the %s is unavailable: %s", request.method, request.url.path, store, why(exc)
        )
        return Answer(
            {
                "detail": {
                    "error": "store_unavailable",
                    "message": f"the {store} cannot be reached now; try again in "
                    f"{RETRY_AFTER_SECONDS} s",
                    "store": store,
                }
            },
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    return answer


def new_service(
    name: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    store: str,
    store_errors: tuple[type[Exception], ...] = (),
    max_body_bytes: int = OppstreamSettings.model_fields["max_body_bytes"].default,
    cors_origins: Sequence[str] = (),
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The FastAPI application of the oppstream `name` service; `Unauthenticated` (raised by
    `chassis.auth.bearer_principal`) answers 401, `Forbidden` 403, an error of the driver or of
    `store_errors` (what the service's persistence library wraps them in) that says the `store`
    cannot be reached 503; a body over `max_body_bytes` 413 unread, a request FastAPI refuses
    422 without the values sent; every request gets a request id and an access log line. Pages
    served from `cors_origins` (the workbench's) may call it from the browser. With a
    `tracer_provider` (chassis.tracing), each request is a server span, the child of the
    span its `traceparent` header names."""
    service = FastAPI(
        # FastAPI's native OpenTelemetry: its server spans only, on our provider (none: off,
        # no check per request). Our own Prometheus metrics; no logs of the values a request
        # sent; no spans of dependency resolution; never exporters of its own from the
        # environment beside ours.
        telemetry={
            "tracing": tracer_provider is not None,
            "tracer_provider": tracer_provider,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        },
        title=f"oppstream {name} service",
        version="1",
        description=description,
        lifespan=lifespan,
    )
    service.add_exception_handler(Unauthenticated, unauthenticated)
    service.add_exception_handler(Forbidden, forbidden)
    service.add_exception_handler(BodyTooLarge, too_large)
    service.add_exception_handler(RequestValidationError, invalid_request)
    service.add_middleware(BoundedBodies, limit=max_body_bytes)
    if cors_origins:
        service.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH"],
            allow_headers=["Authorization", "Content-Type", "If-Match", "Idempotency-Key"],
            expose_headers=["ETag", "X-Request-ID"],
            max_age=600,
        )
    service.add_middleware(RequestLog)  # the outermost: a 413 too is logged with its id
    for kind in (*DRIVER_ERRORS, *store_errors):
        service.add_exception_handler(kind, store_unavailable(store))
    return service


class BoundedCheck(Generic[T]):
    """A blocking check of a dependency (`check`) for /readyz, run in a worker thread and
    given `seconds` to answer (then TimeoutError). A check still running is not started
    again: the next probe takes its answer if it came, else times out at once; so a store
    that hangs holds one thread, and only the first probe waits for it."""

    def __init__(self, check: Callable[[], T], seconds: float = READINESS_SECONDS) -> None:
        self._check, self._seconds = check, seconds
        self._running: asyncio.Future[T] | None = None
        self._until = 0.0

    async def __call__(self) -> T:
        loop = asyncio.get_running_loop()
        running = self._running
        if running is None or running.done() or running.get_loop() is not loop:
            running = self._running = loop.run_in_executor(None, self._check)
            self._until = loop.time() + self._seconds
            # A failure that comes after the probes stopped waiting is answered by the next
            # check: retrieved here, it is not logged as never retrieved.
            running.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(running), self._until - loop.time())
        except TimeoutError:
            raise TimeoutError(f"no answer within {self._seconds} s") from None


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
