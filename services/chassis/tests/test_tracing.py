"""Traces are opt-in (chassis.tracing): with no OTLP endpoint set nothing is built or installed
and the HTTP side does no telemetry at all; with one, spans reach that endpoint over
OTLP/HTTP. A query string's values never reach a span; the spans a process remembers are
bounded."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from chassis.http import new_service
from chassis.tracing import RecentSpans, provider_from_environment, traced_provider
from tests.support.otlp import Received, otlp_receiver


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


@pytest.fixture
def collector() -> Iterator[Received]:
    with otlp_receiver() as received:
        yield received


def test_without_an_endpoint_no_provider_is_built_and_none_installed() -> None:
    assert provider_from_environment("test", {}) is None
    assert provider_from_environment("test", {"OTEL_SERVICE_NAME": "x"}) is None
    service = new_service("test", "untraced", nothing, store="test store")

    @service.get("/hello")
    async def hello() -> dict[str, bool]:
        return {"traced": trace.get_current_span().get_span_context().is_valid}

    with TestClient(service) as client:
        assert client.get("/hello").json() == {"traced": False}
    # The process-wide provider is still OpenTelemetry's placeholder: nothing was installed.
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    assert not service._native_telemetry.enabled()


def test_the_sdk_disabled_wins_over_an_endpoint() -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    assert provider_from_environment("test", environ) is None


@pytest.mark.parametrize(
    ("variable", "path", "exported_to"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "/", "/v1/traces"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/otlp/spans", "/otlp/spans"),
    ],
)
def test_with_an_endpoint_spans_are_exported_there(
    collector: Received, monkeypatch: pytest.MonkeyPatch, variable: str, path: str, exported_to: str
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, collector.url + path)
    provider = provider_from_environment("test")
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span("exported-span"):
        pass
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert [sent for sent, _ in collector.exports] == [exported_to]
    body = collector.bodies()
    assert b"exported-span" in body
    assert b"oppstream-test" in body  # the service's name on the resource


def test_a_served_request_is_a_server_span_that_keeps_no_query_value() -> None:
    exporter = InMemorySpanExporter()
    provider = traced_provider("test", SimpleSpanProcessor(exporter))
    service = new_service("test", "traced", nothing, store="test store", tracer_provider=provider)

    @service.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with TestClient(service) as client:
        answer = client.get(
            "/hello?access_token=secret-token-value&page=2",
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
    assert answer.status_code == 200
    [span] = exporter.get_finished_spans()
    assert span.name == "GET /hello"
    assert span.context is not None
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.attributes is not None
    assert span.attributes["url.query"] == "access_token=REDACTED&page=REDACTED"
    assert "secret-token-value" not in str(dict(span.attributes))


def context(n: int) -> SpanContext:
    return SpanContext(n, n, is_remote=False, trace_flags=TraceFlags(1))


def test_recent_spans_forget_the_oldest_beyond_their_capacity() -> None:
    spans: RecentSpans[str] = RecentSpans(capacity=2)
    for n, key in enumerate(("a", "b", "c"), start=1):
        spans.note(key, context(n))
    assert spans.get("a") is None
    assert spans.take("b") == context(2)
    assert spans.take("b") is None
    assert len(spans) == 1
