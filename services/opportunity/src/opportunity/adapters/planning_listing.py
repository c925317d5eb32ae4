"""The lists of targets and competitions (SPEC §9): tables in the event store's database, caught
up from their aggregates' events before every read (rows and position in one transaction), so
a read finds them without scanning the store and sees every answered command."""

import json
from datetime import UTC
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from opportunity.adapters.positions import LogTable, metadata
from opportunity.application.app import OpportunityApp
from opportunity.application.competitions import competition_state
from opportunity.application.stored_topics import COMPETITION_TOPICS, TARGET_TOPICS
from opportunity.application.unit_of_work import NotFound, UnitOfWork
from opportunity.domain.competition import Competition
from opportunity.domain.target import Target

target_listing = sa.Table(
    "target_listing",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("period", sa.String(10), nullable=False, index=True),
    sa.Column("scope", sa.String(10), nullable=False),
    sa.Column("scope_id", sa.String(100), nullable=False),
    sa.Column("metric", sa.String(30), nullable=False),
)

competition_listing = sa.Table(
    "competition_listing",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("competition_id", sa.String(64), nullable=False, unique=True),
    # When it starts, as UTC ISO text: what the list is ordered by.
    sa.Column("starts_at", sa.String(40), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)


class TargetListing:
    def __init__(self, app: OpportunityApp, engine: Engine, batch: int = 500) -> None:
        self._engine = engine
        metadata.create_all(engine)

        def row(target_id: UUID) -> dict[str, Any]:
            target = UnitOfWork(app).find(target_id, Target)
            if target is None:
                raise NotFound(f"no target {target_id}")
            return {"id": str(target.id), "version": target.version, **target.key.fields()}

        self._table = LogTable(
            engine,
            "target_listing",
            target_listing,
            "id",
            lambda after, limit: app.notifications(after, limit, TARGET_TOPICS),
            row,
            batch,
        )

    def find(self, period: str | None, scope: str | None, metric: str | None = None) -> list[UUID]:
        self._table.catch_up()
        c = target_listing.c
        query = sa.select(c.id).order_by(c.id)
        for column, value in ((c.period, period), (c.scope, scope), (c.metric, metric)):
            if value is not None:
                query = query.where(column == value)
        with self._engine.connect() as conn:
            return [UUID(found) for found in conn.execute(query).scalars()]


class CompetitionListing:
    def __init__(self, app: OpportunityApp, engine: Engine, batch: int = 500) -> None:
        self._engine = engine
        metadata.create_all(engine)

        def row(record_id: UUID) -> dict[str, Any]:
            competition = UnitOfWork(app).find(record_id, Competition)
            if competition is None:
                raise NotFound(f"no competition {record_id}")
            state = competition_state(competition)
            return {
                "id": str(competition.id),
                "version": competition.version,
                "competition_id": state["id"],
                "starts_at": competition.defined.from_.astimezone(UTC).isoformat(),
                "state": json.dumps(state, ensure_ascii=False),
            }

        self._table = LogTable(
            engine,
            "competition_listing",
            competition_listing,
            "id",
            lambda after, limit: app.notifications(after, limit, COMPETITION_TOPICS),
            row,
            batch,
        )

    def all(self) -> list[dict[str, Any]]:
        self._table.catch_up()
        c = competition_listing.c
        query = sa.select(c.state).order_by(c.starts_at, c.competition_id)
        with self._engine.connect() as conn:
            return [json.loads(state) for state in conn.execute(query).scalars()]
