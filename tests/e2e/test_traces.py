"""One trace through the system (SPEC §11): the three services in this process on the real
broker, their spans in one in-memory exporter; an HTTP command that sends a `traceparent` is
followed through the group commit, the relay's publish (the traceparent on the Kafka record),
the projections' apply and the reminders' handling, to the reminder it fires at once."""

import secrets
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chassis.tracing import traced_provider
from contracts import topics
from contracts.rules import load_rulebook
from opportunity.main import build_app as build_opportunity
from opportunity.settings import Settings as OpportunitySettings
from projections.main import build_app as build_projections
from projections.settings import Settings as ProjectionsSettings
from reminders.main import build_app as build_reminders
from reminders.settings import Settings as RemindersSettings
from tests.support.kafka import TestBroker, test_broker
from tests.support.polling import poll
from tests.support.principals import PRINCIPALS, auth, customer

pytestmark = pytest.mark.slow

# The spans of the command's trace, each named by what it is and the service it ran in.
CHAIN = {
    "http": ("POST /opportunities", "oppstream-opportunity"),
    "commit": ("group commit", "oppstream-opportunity"),
    "relay": (f"{topics.OPPORTUNITY_EVENTS} publish", "oppstream-opportunity"),
    "apply": ("projections apply", "oppstream-projections"),
    "handle": ("reminders handle", "oppstream-reminders"),
    "remind": (f"{topics.REMINDERS} publish", "oppstream-reminders"),
}


class OfTrace(InMemorySpanExporter):
    """Keeps the spans of one trace only: the consumers also trace every record they read
    before the test's own, and a scan of them all at each poll would slow what it waits for."""

    def __init__(self, trace_id: str) -> None:
        super().__init__()
        self.trace_id = int(trace_id, 16)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return super().export(
            [s for s in spans if s.context is not None and s.context.trace_id == self.trace_id]
        )


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[TestBroker]:
    """A broker of this module's own: the session's holds the records of every test before,
    and the new consumer groups here would read them all before the test's own."""
    with test_broker() as broker:
        yield broker


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes.get("service.name"))


def tree(spans: Sequence[ReadableSpan], parent: int | None, depth: int = 0) -> list[str]:
    """The spans under `parent`, one a line, indented by depth, in the order they started."""
    lines = []
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        if (span.parent.span_id if span.parent else None) == parent:
            kind = span.kind.name.lower()
            failed = f" failed: {span.status.description}" if not span.status.is_ok else ""
            lines.append(f"{'    ' * depth}{span.name}  [{service_of(span)}, {kind}]{failed}")
            lines += tree(spans, span.context.span_id if span.context else None, depth + 1)
    return lines


def test_one_trace_runs_from_the_http_command_to_the_reminder_it_fires(
    own_kafka: TestBroker, tmp_path: Path
) -> None:
    # The caller's own trace: the service continues it.
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    exporter = OfTrace(trace_id)
    kafka_settings = {
        "kafka_bootstrap": own_kafka.bootstrap,
        "topic_partitions": 6,
        "kafka_session_timeout_ms": 6000,
        "kafka_fetch_max_wait_ms": 10,
    }
    suffix = uuid.uuid4().hex[:8]
    rules = load_rulebook()
    opportunity = build_opportunity(
        OpportunitySettings(eventstore_url=f"sqlite:///{tmp_path}/events.db", **kafka_settings),
        rules=rules,
        principals=PRINCIPALS,
        tracer_provider=traced_provider("opportunity", SimpleSpanProcessor(exporter)),
    )
    projections = build_projections(
        ProjectionsSettings(
            projections_db_url=f"sqlite:///{tmp_path}/projections.db",
            projections_group=f"projections-{suffix}",
            **kafka_settings,
        ),
        rules=rules,
        principals=PRINCIPALS,
        tracer_provider=traced_provider("projections", SimpleSpanProcessor(exporter)),
    )
    reminders = build_reminders(
        RemindersSettings(
            reminders_db_url=f"sqlite:///{tmp_path}/reminders.db",
            reminders_group=f"reminders-{suffix}",
            reminders_tick_ms=100,
            **kafka_settings,
        ),
        rules=rules,
        principals=PRINCIPALS,
        tracer_provider=traced_provider("reminders", SimpleSpanProcessor(exporter)),
    )
    with TestClient(opportunity) as ops, TestClient(projections), TestClient(reminders):
        # An SMB opportunity idle for five days: a follow-up reminder is due at once.
        created = ops.post(
            "/opportunities",
            json={
                "type": "new",
                "customer": customer("SMB"),
                "owner_id": "rep-1",
                "team_id": "east",
                "occurred_at": (datetime.now(UTC) - timedelta(days=5)).isoformat(),
            },
            headers={**auth("service"), "traceparent": f"00-{trace_id}-{caller}-01"},
        )
        assert created.status_code == 201, created.text
        oid = created.json()["id"]

        def whole(found: list[ReadableSpan]) -> bool:
            """Every span of the chain is there, those of Kafka records for the opportunity's
            own record (the customer record's event travels in a trace branch of its own)."""
            return all(
                any(
                    (s.name, service_of(s)) == CHAIN[key]
                    and (
                        key in ("http", "commit")
                        or (s.attributes or {}).get("messaging.kafka.message.key") == oid
                    )
                    for s in found
                )
                for key in CHAIN
            )

        spans = poll(lambda: list(exporter.get_finished_spans()), whole, deadline=90)

    print("\nthe trace of POST /opportunities:\n" + "\n".join(tree(spans, int(caller, 16))))

    def all_of(key: str, of: str | None = None) -> list[ReadableSpan]:
        """The spans of the chain named `key`; of a record keyed by the opportunity if `of`."""
        return [
            s
            for s in spans
            if (s.name, service_of(s)) == CHAIN[key]
            and (of is None or (s.attributes or {}).get("messaging.kafka.message.key") == of)
        ]

    def one(key: str, of: str | None = None) -> ReadableSpan:
        [found] = all_of(key, of)
        return found

    def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
        return (
            span.parent is not None
            and parent.context is not None
            and span.parent.span_id == parent.context.span_id
        )

    http, commit = one("http"), one("commit")
    # The command recorded the opportunity's creation and its customer record's event: the
    # relay publishes each in a span of its own, both under the command.
    relay, remind = one("relay", of=oid), one("remind", of=oid)
    # A consumer may take the record again (at least once: a partition read again, a
    # rebalance): each time in a span of its own, under the same publish.
    applied, handled = all_of("apply", of=oid), all_of("handle", of=oid)
    apply, handle = applied[0], next(h for h in handled if child_of(remind, h))
    assert http.parent is not None
    assert http.parent.span_id == int(caller, 16)
    assert child_of(commit, http)
    assert child_of(relay, commit)
    assert all(child_of(span, relay) for span in applied + handled)
    assert [s.kind for s in (http, commit, relay, apply, handle, remind)] == [
        SpanKind.SERVER,
        SpanKind.INTERNAL,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
    ]
    assert all(s.status.is_ok for s in (http, commit, relay, apply, handle, remind))
    assert (http.attributes or {})["http.response.status_code"] == 201
    assert all(child_of(s, commit) for s in spans if (s.name, service_of(s)) == CHAIN["relay"])
