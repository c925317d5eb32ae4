"""Snapshots: a long-lived opportunity loads from its latest snapshot exactly as a full replay."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import project_aggregate

from chassis.auth import Principal
from contracts.customer import Customer
from contracts.rules import Role, load_rulebook
from opportunity.application.app import OpportunityApp
from opportunity.application.creating import NewOpportunity
from opportunity.application.unit_of_work import Context, Work
from opportunity.domain.opportunity import Opportunity
from opportunity.settings import eventsourcing_env
from tests.support.principals import customer

FOLLOW_UPS = 200
INTERVAL = OpportunityApp.snapshotting_intervals[Opportunity]
REP = Principal("rep-1", Role.REP, "east")
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def app(store_url: str) -> Iterator[OpportunityApp]:
    """The writing copy, with the aggregate cache on as build_app configures it."""
    env = {**eventsourcing_env(store_url), "AGGREGATE_CACHE_MAXSIZE": "10000"}
    opportunities = OpportunityApp(load_rulebook(), env=env)
    try:
        yield opportunities
    finally:
        opportunities.close()


def _log_follow_ups(app: OpportunityApp) -> UUID:
    """An opportunity with FOLLOW_UPS follow-ups, each saved on its own like an HTTP command."""
    new = NewOpportunity(
        type="new", customer=Customer.model_validate(customer()), owner_id="rep-1", team_id="east"
    )
    opportunity = app.run(lambda uow: app.create(uow, new, Context(REP, START)))
    for n in range(1, FOLLOW_UPS + 1):
        app.run(_follow_up(app, opportunity.id, n))
    return opportunity.id


def _follow_up(app: OpportunityApp, opportunity_id: UUID, n: int) -> Work[Opportunity]:
    """The n-th follow-up, n minutes after creation."""
    ctx = Context(REP, START + timedelta(minutes=n))
    return lambda uow: app.log_follow_up(uow, opportunity_id, "call", f"call {n}", ctx)


def _state(aggregate: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def test_opportunity_with_200_follow_ups_loads_from_snapshot_as_replayed(
    app: OpportunityApp, store_url: str
) -> None:
    opportunity_id = _log_follow_ups(app)
    # A second copy on the same store has no cache: it must start from the snapshot.
    reader = OpportunityApp(load_rulebook(), env=eventsourcing_env(store_url))
    try:
        assert reader.snapshots is not None
        snapshots = [s.originator_version for s in reader.snapshots.get(opportunity_id)]
        assert snapshots == list(range(INTERVAL, FOLLOW_UPS + 2, INTERVAL))

        loaded: Opportunity = reader.repository.get(opportunity_id)
        replayed: Opportunity | None = project_aggregate(None, reader.events.get(opportunity_id))
        assert isinstance(loaded, Opportunity)
        assert replayed is not None
        assert loaded.version == replayed.version == FOLLOW_UPS + 1
        assert _state(loaded) == _state(replayed)
        assert loaded.follow_up_count == FOLLOW_UPS
        assert loaded.last_follow_up_at == START + timedelta(minutes=FOLLOW_UPS)
        assert loaded.last_progress_at == START + timedelta(minutes=FOLLOW_UPS)
        # And the copy that wrote it, whose cache was fast-forwarded along the way.
        assert _state(app.repository.get(opportunity_id)) == _state(replayed)
    finally:
        reader.close()


def test_past_version_between_snapshots_loads_as_replayed(
    app: OpportunityApp, store_url: str
) -> None:
    opportunity_id = _log_follow_ups(app)
    reader = OpportunityApp(load_rulebook(), env=eventsourcing_env(store_url))
    try:
        for version in (INTERVAL - 1, INTERVAL, 3 * INTERVAL + 7, FOLLOW_UPS):
            loaded: Opportunity = reader.repository.get(opportunity_id, version=version)
            replayed = project_aggregate(None, reader.events.get(opportunity_id, lte=version))
            assert loaded.version == version
            assert _state(loaded) == _state(replayed)
            assert loaded.follow_up_count == version - 1
    finally:
        reader.close()
