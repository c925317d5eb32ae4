"""What the pool rules count (application.pool.Holdings), read where every committed event
is: the listing, caught up from the notification log first, for an owner's active
opportunities; beside it a table of who each opportunity was reclaimed from, caught up from
the log's OpportunityReclaimed events (from the first, also on a store older than it)."""

import json
import threading
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from contracts.opportunity import Status
from opportunity.adapters.listing import Listing, listing
from opportunity.adapters.positions import metadata, read_position, upsert, write_position
from opportunity.adapters.translation import envelope_of
from opportunity.application.app import OpportunityApp
from opportunity.application.pool import Reclaimed
from opportunity.application.stored_topics import OPPORTUNITY_TOPICS
from opportunity.domain.pool_rules import HELD_STATUSES, Facts, Held

reclaims = sa.Table(
    "pool_reclaims",
    metadata,
    sa.Column("key", sa.String(140), primary_key=True),  # opportunity id/owner id
    sa.Column("opportunity_id", sa.String(36), nullable=False),
    sa.Column("owner_id", sa.String(100), nullable=False, index=True),
    sa.Column("reclaimed_at", sa.String(40), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
)

RECLAIM_TOPICS = [t for t in OPPORTUNITY_TOPICS if t.endswith(".OpportunityReclaimed")]
READER = "pool_reclaims"


def _facts(type_: str, state: str) -> Facts:
    customer = json.loads(state)["customer"]
    return Facts(customer["tier"], customer["ownership"], type_)


class ListingHoldings:
    def __init__(
        self, app: OpportunityApp, listed: Listing, engine: Engine, batch: int = 500
    ) -> None:
        self._app, self._listed, self._engine, self._batch = app, listed, engine, batch
        self._lock = threading.Lock()
        metadata.create_all(engine, tables=[reclaims])

    def held_by(self, owner_ids: Collection[str]) -> list[Held]:
        if not owner_ids:
            return []
        self._listed.catch_up()
        query = sa.select(listing.c.id, listing.c.owner_id, listing.c.type, listing.c.state).where(
            listing.c.owner_id.in_(sorted(owner_ids)),
            listing.c.status.in_(sorted(s.value for s in HELD_STATUSES)),
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Held(row.id, row.owner_id, _facts(row.type, row.state)) for row in rows]

    def reclaimed_from(self, owner_id: str) -> list[Reclaimed]:
        self._listed.catch_up()
        self._catch_up()
        query = (
            sa.select(
                reclaims.c.opportunity_id, reclaims.c.reclaimed_at, listing.c.type, listing.c.state
            )
            .join(listing, listing.c.id == reclaims.c.opportunity_id)
            .where(reclaims.c.owner_id == owner_id, listing.c.status == Status.POOLED.value)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Reclaimed(
                row.opportunity_id,
                _facts(row.type, row.state),
                datetime.fromisoformat(row.reclaimed_at),
            )
            for row in rows
        ]

    def _catch_up(self) -> None:
        """Record the reclaims since the last catch-up: per opportunity and previous owner,
        the last one."""
        with self._lock:
            with self._engine.connect() as conn:
                done = read_position(conn, READER)
            while True:
                recorded = self._app.recorder.select_notifications(
                    start=done, limit=self._batch, topics=RECLAIM_TOPICS, inclusive_of_start=False
                )
                if not recorded:
                    return
                rows: dict[str, dict[str, Any]] = {}
                for notification in recorded:
                    envelope = envelope_of(notification)
                    owner = envelope["payload"]["previous_owner_id"]
                    if owner is not None:
                        key = f"{envelope['opportunity_id']}/{owner}"
                        rows[key] = {
                            "key": key,
                            "opportunity_id": envelope["opportunity_id"],
                            "owner_id": owner,
                            "reclaimed_at": envelope["occurred_at"],
                            "position": notification.id,
                        }
                done = recorded[-1].id
                with self._engine.begin() as conn:
                    if rows:
                        upsert(conn, reclaims, "key", "position", list(rows.values()))
                    write_position(conn, READER, done)
