"""What the pool rules count, read from the listing and the reclaims table (adapters.pool_holdings)
on SQLite and PostgreSQL: an owner's active opportunities with their facts, and the pooled
ones reclaimed from an owner — also those reclaimed before the table existed."""

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import sqlalchemy as sa

from opportunity.adapters.listing import Listing
from opportunity.adapters.pool_holdings import ListingHoldings
from opportunity.application.app import OpportunityApp
from opportunity.settings import eventsourcing_env, sqlalchemy_url
from services.opportunity.tests.pools import SMALL, as_, create, rules_with

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def engine_for(store_url: str) -> sa.Engine:
    return sa.create_engine(sqlalchemy_url(store_url))


def test_the_reclaims_of_a_store_older_than_the_table_are_found(store_url: str) -> None:
    # Owners of this test only: the PostgreSQL database is the session's.
    owner, other = f"rep-{uuid4().hex[:8]}", f"rep-{uuid4().hex[:8]}"
    app = OpportunityApp(rules_with(SMALL), env=eventsourcing_env(store_url))
    engine = engine_for(store_url)
    listed = Listing(app, engine)
    held = [create(app, T0, owner_id=owner, tier=tier) for tier in ("KA", "SMB", "KA")]
    reclaimed = create(app, T0, owner_id=owner, type_="renewal")
    app.run(lambda uow: app.reclaim(uow, reclaimed, "stale", as_("manager-east", T0 + HOUR)))
    app.run(lambda uow: app.void(uow, held[2], "duplicate", as_("manager-east", T0 + HOUR)))
    create(app, T0, owner_id=other)
    listed.catch_up()  # as the code before the pool rules left it

    holdings = ListingHoldings(app, listed, engine)

    found = holdings.held_by([owner])
    assert sorted((h.opportunity_id, h.owner_id, h.facts.tier) for h in found) == sorted(
        [(str(held[0]), owner, "KA"), (str(held[1]), owner, "SMB")]
    )
    (cooling,) = holdings.reclaimed_from(owner)
    assert (cooling.opportunity_id, cooling.at) == (str(reclaimed), T0 + HOUR)
    assert (cooling.facts.tier, cooling.facts.ownership, cooling.facts.type) == (
        "KA",
        "SOE",
        "renewal",
    )
    assert holdings.reclaimed_from(other) == []
    assert holdings.held_by([]) == []
    app.close()
    engine.dispose()


def test_a_reclaimed_one_claimed_again_is_no_longer_listed_as_reclaimed(store_url: str) -> None:
    owner, taker = f"rep-{uuid4().hex[:8]}", f"rep-{uuid4().hex[:8]}"
    app = OpportunityApp(rules_with(SMALL), env=eventsourcing_env(store_url))
    engine = engine_for(store_url)
    listed = Listing(app, engine)
    holdings = ListingHoldings(app, listed, engine)
    app.pool.count_in(holdings)
    oid: UUID = create(app, T0, owner_id=owner)
    app.run(lambda uow: app.reclaim(uow, oid, "stale", as_("manager-east", T0 + HOUR)))
    assert [r.opportunity_id for r in holdings.reclaimed_from(owner)] == [str(oid)]

    app.run(lambda uow: app.assign(uow, oid, taker, as_("manager-east", T0 + 2 * HOUR), False))

    assert holdings.reclaimed_from(owner) == []
    assert [(h.opportunity_id, h.owner_id) for h in holdings.held_by([taker])] == [
        (str(oid), taker)
    ]
    app.close()
    engine.dispose()
