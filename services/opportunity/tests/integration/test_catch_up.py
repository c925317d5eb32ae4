"""Two copies of the service on one PostgreSQL store: a batch brings the cached aggregates it
changes up to date in one indexed query, so it neither rereads them one by one nor conflicts
on what the other copy wrote."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import pytest

from chassis.auth import Principal
from contracts.customer import Customer
from contracts.rules import Role, load_rulebook
from opportunity.adapters.catch_up import newer_events_query
from opportunity.application.app import OpportunityApp
from opportunity.application.creating import NewOpportunity
from opportunity.application.unit_of_work import Context
from opportunity.domain.opportunity import Opportunity
from opportunity.settings import eventsourcing_env
from tests.support.principals import customer

REP = Principal("rep-1", Role.REP, "east")
STAGES = ("requirements", "proposal")

pytestmark = pytest.mark.postgres


@pytest.fixture
def copies(postgres_url: str) -> Iterator[tuple[OpportunityApp, OpportunityApp]]:
    env = {
        **eventsourcing_env(postgres_url),
        "AGGREGATE_CACHE_MAXSIZE": "1000",
        "AGGREGATE_CACHE_FASTFORWARD": "n",  # as build_app configures it
    }
    one, other = OpportunityApp(load_rulebook(), env=env), OpportunityApp(load_rulebook(), env=env)
    try:
        yield one, other
    finally:
        one.close()
        other.close()


def create(app: OpportunityApp) -> UUID:
    new = NewOpportunity(
        type="new", customer=Customer.model_validate(customer()), owner_id="rep-1", team_id="east"
    )
    return app.run(lambda uow: app.create(uow, new, Context(REP, datetime.now(UTC)))).id


def advance(app: OpportunityApp, oid: UUID, stage: str) -> Any:
    def work(uow: Any) -> Opportunity:
        return app.advance(uow, oid, stage, Context(REP, datetime.now(UTC)))

    return work


def test_a_batch_runs_on_the_cache_brought_up_to_date_without_rereading(
    copies: tuple[OpportunityApp, OpportunityApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, other = copies
    known, unknown = create(one), create(one)
    other.run(advance(other, known, STAGES[0]))  # `other` caches it at version 2
    one.run(advance(one, known, STAGES[1]))  # ... and falls behind: version 3
    monkeypatch.setattr(other, "fresh", lambda _: pytest.fail("read aggregate by aggregate"))

    outcomes = other.run_batch(
        [advance(other, known, "negotiation"), advance(other, unknown, "requirements")],
        touches={known, unknown},
    )

    assert [outcome.unwrap().version for outcome in outcomes] == [4, 2]
    assert one.fresh(known).stage == "negotiation"  # as stored


def test_the_catch_up_query_looks_aggregates_up_by_key(
    copies: tuple[OpportunityApp, OpportunityApp], postgres_url: str
) -> None:
    one, _ = copies
    for _ in range(60):
        create(one)
    table = one.recorder.events_table_name  # type: ignore[attr-defined]
    query = newer_events_query(table).as_string()
    with psycopg.connect(postgres_url) as connection:
        connection.execute(f"ANALYZE {table}")
        plan = connection.execute(
            f"EXPLAIN {query.replace('%b', '%s')}", ([UUID(int=1), UUID(int=2)], [0, 0])
        ).fetchall()

    text = "\n".join(row[0] for row in plan)
    assert "Seq Scan" not in text, text
