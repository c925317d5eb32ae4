"""The searchable list of customers (SPEC §8.1): a table in the event store's database, caught
up from the customer records' events before every search. Who sees a customer follows from the
opportunity listing: whoever sees one of its opportunities."""

import json
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from opportunity.adapters.listing import Listing, Page, Visibility, listing, page, visible
from opportunity.adapters.positions import LogTable, metadata
from opportunity.application.app import OpportunityApp
from opportunity.application.customers import customer_state
from opportunity.application.stored_topics import CUSTOMER_TOPICS
from opportunity.application.unit_of_work import NotFound, UnitOfWork
from opportunity.domain.customer_record import CustomerRecord

customer_listing = sa.Table(
    "customer_listing",
    metadata,
    sa.Column("uscc", sa.String(18), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    # The name case-folded: what a search by name matches (and orders by).
    sa.Column("name_key", sa.Text, nullable=False),
    sa.Column("tier", sa.String(10), index=True),
    sa.Column("region", sa.String(100), index=True),
    sa.Column("state", sa.Text, nullable=False),
)


class CustomerListing:
    def __init__(
        self, app: OpportunityApp, engine: Engine, opportunities: Listing, batch: int = 500
    ) -> None:
        self._engine, self._opportunities = engine, opportunities
        metadata.create_all(engine)

        def row(record_id: UUID) -> dict[str, Any]:
            record = UnitOfWork(app).find(record_id, CustomerRecord)
            if record is None:
                raise NotFound(f"no customer record {record_id}")
            return _row(record)

        self._table = LogTable(
            engine,
            "customer_listing",
            customer_listing,
            "uscc",
            lambda after, limit: app.notifications(after, limit, CUSTOMER_TOPICS),
            row,
            batch,
        )

    def search(  # noqa: PLR0913 - the filters of GET /customers and its page
        self,
        name: str | None,
        tier: str | None,
        region: str | None,
        visibility: Visibility,
        limit: int,
        offset: int,
    ) -> Page:
        """The customers whose name contains `name` (case-insensitive), of the `tier` and
        `region` given, that have an opportunity the principal sees; by name."""
        self._opportunities.catch_up()
        self._table.catch_up()
        c = customer_listing.c
        where: list[sa.ColumnElement[bool]] = []
        if name:
            where.append(c.name_key.contains(name.casefold(), autoescape=True))
        if tier is not None:
            where.append(c.tier == tier)
        if region is not None:
            where.append(c.region == region)
        seen = visible(visibility)
        if seen:
            where.append(sa.exists().where(listing.c.uscc == c.uscc, *seen))
        return page(self._engine, customer_listing, where, [c.name_key, c.uscc], limit, offset)


def _row(record: CustomerRecord) -> dict[str, Any]:
    state = customer_state(record)
    return {
        "uscc": state["uscc"],
        "version": state["version"],
        "name_key": str(state["name"]).casefold(),
        "tier": state["tier"],
        "region": state["region"],
        "state": json.dumps(state, ensure_ascii=False),
    }
