"""The searchable list of opportunities: a table in the event store's database, caught up
from the notification log before every search, so a search sees every answered command."""

import json
import threading
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from contracts.opportunity import Status
from opportunity.adapters.positions import metadata, read_position, upsert, write_position
from opportunity.application.app import OpportunityApp
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


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


class Listing:
    def __init__(self, app: OpportunityApp, engine: Engine, batch: int = 500) -> None:
        self._app, self._engine, self._batch = app, engine, batch
        self._lock = threading.Lock()
        metadata.create_all(engine)

    def catch_up(self) -> int:
        """Apply what was recorded since the last catch-up; the new position."""
        with self._lock:
            with self._engine.connect() as conn:
                done = read_position(conn, "listing")
            while True:
                recorded = self._app.opportunity_notifications(done, self._batch)
                if not recorded:
                    return done
                ids = {notification.originator_id for notification in recorded}
                rows = [self._row(self._app.opportunity(UUID(str(i)))) for i in ids]
                done = recorded[-1].id
                with self._engine.begin() as conn:
                    upsert(conn, listing, "id", "version", rows)
                    write_position(conn, "listing", done)

    def search(
        self, filters: dict[str, str | None], visibility: Visibility, limit: int, offset: int
    ) -> Page:
        self.catch_up()
        where = [listing.c[name] == value for name, value in filters.items() if value is not None]
        if visibility.owner_id is not None:
            where.append(
                sa.or_(
                    listing.c.owner_id == visibility.owner_id,
                    sa.and_(
                        listing.c.status == Status.POOLED.value,
                        listing.c.team_id == visibility.team_id,
                    ),
                )
            )
        elif visibility.team_id is not None:
            where.append(listing.c.team_id == visibility.team_id)
        query = sa.select(listing.c.state).where(*where)
        with self._engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(listing).where(*where)
            ).scalar_one()
            states = conn.execute(
                query.order_by(listing.c.created_at.desc(), listing.c.id)
                .limit(limit)
                .offset(offset)
            ).scalars()
            return Page(items=[json.loads(s) for s in states], total=total)

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
