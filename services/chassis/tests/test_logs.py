"""How a service logs (SPEC §11): JSON lines that parse and carry the request id of the
request they were logged in (and, traced, its trace and span ids), an access line per request
in either format, and an incoming X-Request-ID kept only when it is sane."""

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chassis.http import new_service
from chassis.logs import configure_logging
from chassis.tracing import traced_provider

hello = logging.getLogger("chassis.tests.hello")


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """What the root logger writes while a test runs; logging as it was afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    written = io.StringIO()
    yield written
    root.handlers[:] = handlers
    root.setLevel(level)


def serve(
    output: io.StringIO, form: str, tracer_provider: TracerProvider | None = None
) -> TestClient:
    configure_logging("test", form)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(output)
    service = new_service(
        "test", "logs", nothing, store="test store", tracer_provider=tracer_provider
    )

    @service.get("/hello")
    async def hello_route() -> dict[str, str]:
        hello.info("saying hello")
        return {"hello": "world"}

    return TestClient(service)


def test_json_lines_parse_and_carry_the_request_id(output: io.StringIO) -> None:
    answer = serve(output, "json").get("/hello?token=abc", headers={"X-Request-ID": "req-1.a_B"})
    assert answer.headers["x-request-id"] == "req-1.a_B"
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    said = next(line for line in lines if line["logger"] == "chassis.tests.hello")
    assert said["message"] == "saying hello"
    assert said["request_id"] == "req-1.a_B"
    assert {"time", "level", "service", "logger", "message"} <= set(said)
    assert said["service"] == "test"
    access = next(line for line in lines if line["logger"] == "oppstream.access")
    assert access["level"] == "INFO"
    assert access["request_id"] == "req-1.a_B"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/hello", 200)
    assert access["duration_ms"] >= 0
    served = [line for line in lines if line["logger"] != "httpx"]  # the test's client
    assert "token=abc" not in json.dumps(served)
    assert not any("trace_id" in line for line in lines)  # no tracing, no trace id


def test_traced_json_lines_carry_the_trace_and_span_ids(output: io.StringIO) -> None:
    exporter = InMemorySpanExporter()
    provider = traced_provider("test", SimpleSpanProcessor(exporter))
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    answer = serve(output, "json", provider).get(
        "/hello", headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    )
    assert answer.status_code == 200
    [span] = exporter.get_finished_spans()
    assert span.context is not None
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    said = next(line for line in lines if line["logger"] == "chassis.tests.hello")
    access = next(line for line in lines if line["logger"] == "oppstream.access")
    for line in (said, access):
        assert line["trace_id"] == trace_id
        assert line["span_id"] == format(span.context.span_id, "016x")


def test_a_request_id_that_is_not_sane_is_replaced(output: io.StringIO) -> None:
    client = serve(output, "json")
    for sent in ("x" * 65, "a b", "a\nb", ""):
        answer = client.get("/hello", headers={"X-Request-ID": sent})
        given = answer.headers["x-request-id"]
        assert given != sent
        assert re.fullmatch("[0-9a-f]{32}", given)
    assert "x" * 65 not in output.getvalue()


def test_the_text_format_has_an_access_line(output: io.StringIO) -> None:
    answer = serve(output, "text").post("/hello", headers={"X-Request-ID": "r-2"})
    assert answer.status_code == 405
    access = [line for line in output.getvalue().splitlines() if "oppstream.access" in line]
    assert len(access) == 1
    assert " INFO oppstream.access: POST /hello 405 " in access[0]
    assert access[0].endswith("request_id=r-2")
