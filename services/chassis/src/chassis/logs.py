"""How a service logs (SPEC §11): text lines, or with `OPPSTREAM_LOG_FORMAT=json` one JSON
object a line; the request id of the request being served on every line where known (and in
JSON the trace and span ids of the span being run, chassis.tracing), and an access line per
request (logger `oppstream.access`)."""

import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chassis.tracing import current_ids

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# An incoming X-Request-ID is taken as it is only when it cannot smuggle anything into a log.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What an access line says besides its message, as fields of a JSON line.
ACCESS_FIELDS = ("method", "path", "status", "duration_ms")

access = logging.getLogger("oppstream.access")


class JsonLines(logging.Formatter):
    """One JSON object a line: time, level, service, logger, message; request_id, trace_id and
    span_id where known."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        for name in ("trace_id", "span_id"):
            if (value := getattr(record, name, None)) is not None:
                line[name] = value
        line.update({k: getattr(record, k) for k in ACCESS_FIELDS if hasattr(record, k)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def _with_request_id(record: logging.LogRecord) -> bool:
    """Run where the line is logged: the request id of the request being served, and the ids
    of the span being run, if any."""
    if not hasattr(record, "request_id"):
        record.request_id = REQUEST_ID.get()
    if not hasattr(record, "trace_id") and (ids := current_ids()) is not None:
        record.trace_id, record.span_id = ids
    return True


def configure_logging(service: str, form: str) -> None:
    """The one place logging is set up: INFO and above (what a consumer passed over, and why,
    is said at INFO) to stderr, as text or JSON lines (`form`)."""
    handler = logging.StreamHandler()
    handler.addFilter(_with_request_id)
    handler.setFormatter(JsonLines(service) if form == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The sent X-Request-ID if sane, else a new one."""
    for name, value in headers:
        if name == b"x-request-id":
            sent = value.decode("latin-1")
            if SANE_REQUEST_ID.fullmatch(sent):
                return sent
    return uuid.uuid4().hex


class RequestLog:
    """ASGI middleware: each request gets a request id (answered in `X-Request-ID`, set on every
    log line while it is served) and an access line: method, path (no query string), status,
    duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            method, path = scope["method"], scope["path"]
            access.info(
                "%s %s %d %.1f ms request_id=%s",
                method,
                path,
                status,
                duration_ms,
                request_id,
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )
            REQUEST_ID.reset(token)
