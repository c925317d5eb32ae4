"""The W3C `traceparent` on Kafka records (SPEC §11): spans of records published with our own
producer code, each the child of the span the caller names, its traceparent on the record;
and spans of records consumed in batches, each the child of the span its record names.

FastStream's telemetry middleware (chassis.kafka.broker) covers what goes through the broker's
own publish; a batch subscriber's span there is one per batch, in a new trace, so the trace of
each record is continued here instead."""

import dataclasses
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chassis.kafka.producing import Outgoing

TRACEPARENT = "traceparent"
_PROPAGATOR = TraceContextTextMapPropagator()

T = TypeVar("T")


class Traced(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class _RecordHeaders(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        found = [value.decode("latin-1") for name, value in carrier if name == key]
        return found or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [name for name, _ in carrier]


_HEADERS = _RecordHeaders()


def parent_in(headers: Sequence[tuple[str, bytes]]) -> Context:
    """The span a record's `traceparent` names (an empty context, so a new trace, if none)."""
    return _PROPAGATOR.extract(headers, getter=_HEADERS)


def under(span: SpanContext | None) -> Context | None:
    """A context whose parent is `span` (None: a new trace)."""
    return None if span is None else trace.set_span_in_context(NonRecordingSpan(span))


def traceparent_of(span: Span) -> tuple[str, bytes]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return TRACEPARENT, carrier[TRACEPARENT].encode()


def _keyed(key: bytes | None) -> dict[str, str]:
    """The record's key as a span attribute: an identifier (an opportunity's, a lead's)."""
    return {} if key is None else {"messaging.kafka.message.key": key.decode("latin-1")}


def _ended(spans: Sequence[Span], error: BaseException | None) -> None:
    for span in spans:
        if error is not None:
            span.set_status(StatusCode.ERROR, type(error).__name__)
        span.end()


@contextmanager
def consuming(tracer: Tracer | None, name: str, records: Sequence[Traced]) -> Iterator[list[Span]]:
    """A CONSUMER span `name` per record, while the block handles their batch (the batch is
    applied as one, so each record's span lasts as long as the batch); each the child of the
    span the record's traceparent names, a new trace when it names none. No tracer: none."""
    if tracer is None:
        yield []
        return
    spans = [
        tracer.start_span(
            name,
            context=parent_in(record.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
                **_keyed(record.key),
            },
        )
        for record in records
    ]
    try:
        yield spans
    except BaseException as exc:
        _ended(spans, exc)
        raise
    _ended(spans, None)


def each(spans: Sequence[Span], count: int) -> Sequence[Span | None]:
    """The span of each of `count` records: `spans` (of `consuming`), or None for each."""
    return spans if spans else [None] * count


async def within(span: Span | None, work: Awaitable[T]) -> T:
    """`work`, run with `span` as the current span (None: as it is); so what it does (a
    command, a publish) joins the trace of the record it handles."""
    if span is None:
        return await work
    with trace.use_span(span, end_on_exit=False):
        return await work


class Publishing:
    """The PRODUCER spans of records being published, from `traced` until `end`."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._spans: list[Span] = []

    def traced(self, record: Outgoing, parent: SpanContext | None) -> Outgoing:
        """`record` with the traceparent of a new span `<topic> publish`, the child of
        `parent` (a new trace when None)."""
        span = self._tracer.start_span(
            f"{record.topic} publish",
            context=under(parent),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                **_keyed(record.key),
            },
        )
        self._spans.append(span)
        return dataclasses.replace(record, headers=[*record.headers, traceparent_of(span)])

    def end(self, error: BaseException | None = None) -> None:
        spans, self._spans = self._spans, []
        _ended(spans, error)


@contextmanager
def publishing(tracer: Tracer | None) -> Iterator[Publishing | None]:
    """Spans for the records published in the block, ended when it is (an error marks them
    failed). No tracer: None, and nothing to do."""
    if tracer is None:
        yield None
        return
    spans = Publishing(tracer)
    try:
        yield spans
    except BaseException as exc:
        spans.end(exc)
        raise
    spans.end()
