"""The searchable list of opportunities: a table in the event store's database, caught up
from the notification log before every search, so a search sees every answered command."""

import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chassis.auth import Principal
from contracts.opportunity import Status
from contracts.rules import Role
from opportunity.adapters.positions import LogTable, metadata
from opportunity.application.app import OpportunityApp
from opportunity.application.stored_topics import OPPORTUNITY_TOPICS
from opportunity.application.views import state_of

listing = sa.Table(
    "opportunity_listing",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(20), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("stage", sa.String(50), nullable=False, index=True),
    sa.Column("owner_id", sa.String(100), index=True),
    sa.Column("team_id", sa.String(100), index=True),
    sa.Column("uscc", sa.String(18), nullable=False, index=True),
    sa.Column("created_at", sa.String(40), nullable=False, index=True),
    sa.Column("state", sa.Text, nullable=False),
)

FILTERS = ("owner_id", "team_id", "status", "stage", "type", "uscc")


@dataclass(frozen=True)
class Visibility:
    """Which rows a principal may see: everything, a team, or own plus the team's pool."""

    team_id: str | None = None
    owner_id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> "Visibility":
        """Reps see their own and their team's pool, managers their team, the others all."""
        if principal.role is Role.REP:
            return cls(team_id=principal.team_id, owner_id=principal.id)
        if principal.role is Role.MANAGER:
            return cls(team_id=principal.team_id)
        return cls()


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


def visible(visibility: Visibility) -> list[sa.ColumnElement[bool]]:
    """The conditions on `opportunity_listing` rows the principal may see."""
    if visibility.owner_id is not None:
        return [
            sa.or_(
                listing.c.owner_id == visibility.owner_id,
                sa.and_(
                    listing.c.status == Status.POOLED.value,
                    listing.c.team_id == visibility.team_id,
                ),
            )
        ]
    if visibility.team_id is not None:
        return [listing.c.team_id == visibility.team_id]
    return []


def page(  # noqa: PLR0913 - a query and its page
    engine: Engine,
    table: sa.Table,
    where: list[sa.ColumnElement[bool]],
    order: list[sa.ColumnElement[Any]],
    limit: int,
    offset: int,
) -> Page:
    """A page of the `state`s of the `table`'s rows that match `where`, in `order`, and how
    many match in all."""
    with engine.connect() as conn:
        total = conn.execute(
            sa.select(sa.func.count()).select_from(table).where(*where)
        ).scalar_one()
        query = sa.select(table.c.state).where(*where).order_by(*order)
        states = conn.execute(query.limit(limit).offset(offset)).scalars()
        return Page(items=[json.loads(s) for s in states], total=total)


class Listing:
    def __init__(self, app: OpportunityApp, engine: Engine, batch: int = 500) -> None:
        self._app, self._engine = app, engine
        metadata.create_all(engine)
        self._table = LogTable(
            engine,
            "listing",
            listing,
            "id",
            lambda after, limit: app.notifications(after, limit, OPPORTUNITY_TOPICS),
            lambda opportunity_id: self._row(app.opportunity(opportunity_id)),
            batch,
        )

    def catch_up(self) -> int:
        """Apply what was recorded since the last catch-up; the new position."""
        return self._table.catch_up()

    def search(
        self, filters: dict[str, str | None], visibility: Visibility, limit: int, offset: int
    ) -> Page:
        self.catch_up()
        where = [listing.c[name] == value for name, value in filters.items() if value is not None]
        where += visible(visibility)
        order = [listing.c.created_at.desc(), listing.c.id]
        return page(self._engine, listing, where, order, limit, offset)

    def of_customer(self, uscc: str) -> list[dict[str, Any]]:
        """The states of the customer's opportunities, newest first."""
        self.catch_up()
        query = sa.select(listing.c.state).where(listing.c.uscc == uscc)
        with self._engine.connect() as conn:
            states = conn.execute(
                query.order_by(listing.c.created_at.desc(), listing.c.id)
            ).scalars()
            return [json.loads(s) for s in states]

    @staticmethod
    def _row(opportunity: Any) -> dict[str, Any]:
        state = state_of(opportunity)
        return {
            "id": state["id"],
            "version": state["version"],
            "type": state["type"],
            "status": state["status"],
            "stage": state["stage"],
            "owner_id": state["owner_id"],
            "team_id": state["team_id"],
            "uscc": state["customer"]["uscc"],
            "created_at": opportunity.created_at.astimezone(UTC).isoformat(),
            "state": json.dumps(state, ensure_ascii=False),
        }
