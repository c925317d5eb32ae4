"""Which command's span recorded each event, from the moment the command records it until the
relay publishes the event: so the trace of an HTTP command runs on through Kafka while the
stored event stays as it is (stored events are kept forever; a trace id is no fact of the
business). In memory and bounded (chassis.tracing.RecentSpans): after a restart between the
commit and the publish, or with more events waiting than it keeps, the publish starts a new
trace."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from uuid import UUID

from opentelemetry.trace import SpanContext, Tracer

from chassis.tracing import RecentSpans
from opportunity.application.unit_of_work import UnitOfWork, Work

T = TypeVar("T")

# A recorded event: its aggregate's id and its version there.
EventKey = tuple[UUID | str, int]


def recorded_in(uow: UnitOfWork) -> set[EventKey]:
    return {
        (event.originator_id, event.originator_version)
        for aggregate in uow.aggregates
        for event in aggregate.pending_events
    }


class CommitTraces:
    """The span of each command in a group commit, and the events each one recorded."""

    def __init__(self, tracer: Tracer, spans: RecentSpans[EventKey] | None = None) -> None:
        self.tracer = tracer
        self.spans: RecentSpans[EventKey] = RecentSpans() if spans is None else spans

    @contextmanager
    def command(self, work: Work[T]) -> Iterator[Work[T]]:
        """While the block runs: a span `group commit`, the child of the span being run (the
        HTTP request's, the consumed record's), and `work` noting each event it records as
        that span's. Noted before the transaction commits, so the relay never sees an event
        before its span; a command that is run again (a conflict) notes its events again,
        and one refused or lost leaves keys no event will ever have."""
        with self.tracer.start_as_current_span("group commit") as span:
            context = span.get_span_context()

            def noting(uow: UnitOfWork) -> T:
                before = recorded_in(uow)
                value = work(uow)
                for key in recorded_in(uow) - before:
                    self.spans.note(key, context)
                return value

            yield noting

    def span_of(self, originator_id: UUID | str, version: int) -> SpanContext | None:
        """The span of the command that recorded the event, if remembered."""
        return self.spans.get((originator_id, version))

    def published(self, events: Iterable[EventKey]) -> None:
        """Forget the spans of events the broker acknowledged (a failed send keeps them for
        the next try)."""
        for key in events:
            self.spans.take(key)
