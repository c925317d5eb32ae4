"""The traceparent on Kafka records (chassis.kafka.traces): a published record carries the
span it was published in, the child of the span named; a consumed record's span is the
child of the span its traceparent names, or starts a trace; a failure marks the spans."""

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from chassis.kafka.producing import Outgoing
from chassis.kafka.traces import TRACEPARENT, consuming, publishing

TOPIC = "crm.opportunity.events"


@dataclass(frozen=True)
class Record:
    offset: int
    headers: Sequence[tuple[str, bytes]] = field(default_factory=list)
    topic: str = TOPIC
    partition: int = 0
    key: bytes | None = b"opportunity"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_a_published_record_carries_its_span_and_a_consumer_continues_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("command") as command:
        cause = command.get_span_context()
    with publishing(tracer) as spans:
        assert spans is not None
        sent = spans.traced(Outgoing(TOPIC, b"k", b"v", headers=[("event_type", b"X")]), cause)
    assert sent.headers[0] == ("event_type", b"X")
    name, value = sent.headers[1]
    assert name == TRACEPARENT
    published = exporter.get_finished_spans()[-1]
    assert published.name == f"{TOPIC} publish"
    assert published.kind is SpanKind.PRODUCER
    assert published.parent is not None
    assert published.parent.span_id == cause.span_id
    assert published.context is not None
    ids = f"00-{published.context.trace_id:032x}-{published.context.span_id:016x}-"
    assert value.decode().startswith(ids)

    with consuming(tracer, "apply", [Record(7, sent.headers), Record(8)]) as consumed:
        assert len(consumed) == 2
    applied, untraced = exporter.get_finished_spans()[-2:]
    assert applied.kind is SpanKind.CONSUMER
    assert applied.parent is not None
    assert applied.parent.span_id == published.context.span_id
    assert applied.context is not None
    assert applied.context.trace_id == cause.trace_id
    assert applied.attributes is not None
    assert applied.attributes["messaging.kafka.offset"] == 7
    assert untraced.parent is None  # no traceparent: a trace of its own
    assert untraced.context is not None
    assert untraced.context.trace_id != cause.trace_id


def test_spans_of_a_batch_that_fails_are_marked_failed(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    with pytest.raises(ConnectionError), consuming(tracer, "apply", [Record(1), Record(2)]):
        raise ConnectionError("store away")

    def send_to_a_broker_away() -> None:
        with publishing(tracer) as spans:
            assert spans is not None
            spans.traced(Outgoing(TOPIC, b"k", b"v"), None)
            raise TimeoutError("broker away")

    with pytest.raises(TimeoutError):
        send_to_a_broker_away()
    failed = exporter.get_finished_spans()
    assert len(failed) == 3
    assert {s.status.status_code for s in failed} == {StatusCode.ERROR}
    assert {s.status.description for s in failed} == {"ConnectionError", "TimeoutError"}


def test_without_a_tracer_nothing_is_traced() -> None:
    with consuming(None, "apply", [Record(1)]) as consumed:
        assert consumed == []
    with publishing(None) as spans:
        assert spans is None
