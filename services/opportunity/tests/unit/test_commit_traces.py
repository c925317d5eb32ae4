"""The group commit, traced (application/commit_traces.py): each command is a span, the child
of the span it was given in; every event it records is noted with that span, so the relay
finds it; the events of another command run in the same batch are that one's."""

import asyncio
from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chassis.auth import Principal
from contracts.customer import Customer
from contracts.rules import Role, load_rulebook
from opportunity.application.app import OpportunityApp
from opportunity.application.commit_traces import CommitTraces
from opportunity.application.creating import NewOpportunity
from opportunity.application.group_commit import GroupCommitter
from opportunity.application.unit_of_work import Context, UnitOfWork
from opportunity.metrics import Metrics
from tests.support.principals import customer

ADMIN = Principal("admin", Role.ADMIN)


def new_opportunity() -> NewOpportunity:
    return NewOpportunity(
        type="new",
        customer=Customer.model_validate(customer()),
        owner_id="rep-1",
        team_id="east",
    )


async def test_each_command_notes_its_own_events_with_its_own_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    app = OpportunityApp(load_rulebook(), env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    traces = CommitTraces(tracer)
    committer = GroupCommitter(app, 10, 1, Metrics().batch_sizes, traces)
    first, second = new_opportunity(), new_opportunity()

    async def request(new: NewOpportunity) -> Any:
        def create(uow: UnitOfWork) -> Any:
            return app.create(uow, new, Context(ADMIN, datetime.now(UTC)))

        with tracer.start_as_current_span(f"POST {new.id}"):
            return await committer.submit(create)

    try:
        await asyncio.gather(request(first), request(second))  # one batch, two commands
    finally:
        await committer.close()

    spans = exporter.get_finished_spans()
    for new in (first, second):
        [command] = [s.context for s in spans if s.name == f"POST {new.id}" and s.context]
        [commit] = [
            s
            for s in spans
            if s.name == "group commit" and s.parent and s.parent.span_id == command.span_id
        ]
        assert commit.context is not None
        noted = traces.span_of(new.id, 1)
        assert noted is not None
        assert noted.span_id == commit.context.span_id
    # Each creation also recorded its customer record's events: every recorded event is noted.
    recorded = app.recorder.select_notifications(start=1, limit=100)
    assert len(recorded) > 2
    assert all(traces.span_of(n.originator_id, n.originator_version) for n in recorded)
    assert len(traces.spans) == len(recorded)
    traces.published([(first.id, 1)])
    assert traces.span_of(first.id, 1) is None
    assert traces.span_of(second.id, 1) is not None
    app.close()
