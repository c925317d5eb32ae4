"""Traces (SPEC §11): OpenTelemetry spans, exported over OTLP/HTTP only when
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; unset, no
provider exists and every traced place skips its tracing on one `None` check. The W3C
`traceparent` carried on Kafka records is chassis.kafka.traces."""

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Generic, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanContext, Tracer

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Spans remembered between two places of a process (a commit and its publish): about 500
# bytes each, so 10 MB at most; a relay rarely lags by more than a batch or two.
REMEMBERED_SPANS = 20_000

K = TypeVar("K", bound=Hashable)


class QueryRedaction(SpanProcessor):
    """A query string can carry what must never leave the process (a token pasted into
    `?access_token=`): a server span keeps the names of its query parameters, never their
    values, as the access log keeps no query string at all."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:  # noqa: ARG002 - the interface's
        query = (span.attributes or {}).get("url.query")
        if isinstance(query, str) and query:
            names = (part.split("=", 1)[0] for part in query.split("&"))
            span.set_attribute("url.query", "&".join(f"{name}=REDACTED" for name in names))


def traced_provider(service: str, exporting: SpanProcessor) -> TracerProvider:
    """A tracer provider for the service, its spans redacted (`QueryRedaction`), then handed
    to `exporting`."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"oppstream-{service}"}))
    provider.add_span_processor(QueryRedaction())
    provider.add_span_processor(exporting)
    return provider


def provider_from_environment(
    service: str, environ: Mapping[str, str] = os.environ
) -> TracerProvider | None:
    """The service's tracer provider, exporting in batches to the OTLP endpoint of the
    standard OTel variables (protocol http/protobuf; `OTEL_RESOURCE_ATTRIBUTES` adds to the
    resource); None when no endpoint is set or `OTEL_SDK_DISABLED=true`."""
    if not any(environ.get(name) for name in ENDPOINTS):
        return None
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = environ.get(ENDPOINTS[1]) or f"{environ[ENDPOINTS[0]].rstrip('/')}/v1/traces"
    return traced_provider(service, BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))


def tracer_of(provider: TracerProvider | None, service: str) -> Tracer | None:
    """The tracer of the service's own spans; None: tracing is off."""
    return None if provider is None else provider.get_tracer(f"oppstream.{service}")


def current_ids() -> tuple[str, str] | None:
    """The (trace id, span id) of the span being run, in hex as exporters show them; None
    outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class RecentSpans(Generic[K]):
    """The span contexts of the last `capacity` keys noted, the oldest forgotten first; for a
    trace to continue from one part of a process to another that shares no call (a commit →
    its relay publish, an event handled → the reminder it fires). Thread-safe: the writers
    note in worker threads."""

    def __init__(self, capacity: int = REMEMBERED_SPANS) -> None:
        self._capacity = capacity
        self._spans: OrderedDict[K, SpanContext] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, key: K, span: SpanContext) -> None:
        with self._lock:
            self._spans[key] = span
            self._spans.move_to_end(key)
            while len(self._spans) > self._capacity:
                self._spans.popitem(last=False)

    def get(self, key: K) -> SpanContext | None:
        with self._lock:
            return self._spans.get(key)

    def take(self, key: K) -> SpanContext | None:
        """The span noted for `key`, forgotten."""
        with self._lock:
            return self._spans.pop(key, None)

    def __len__(self) -> int:
        return len(self._spans)
