"""Fixtures of the projections service's tests: databases (SQLite and real PostgreSQL), the
service without Kafka, events fed straight into its store, a clock the test sets."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from contracts.rules import load_rulebook
from projections.adapters import migrate
from projections.adapters.database import create_engine
from projections.adapters.feed import read_listed
from projections.adapters.schema import EVENT_TABLES
from projections.adapters.store import Outcome, Store
from projections.main import build_app
from projections.settings import Settings
from services.projections.tests.history import History, day, envelopes_of
from tests.support.postgres import fresh_database
from tests.support.principals import PRINCIPALS, auth


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_database("oppstream_projections") as url:
        yield url


def clean(url: str) -> None:
    """Empty the event-derived tables of a database the session shares."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        present = set(sa.inspect(conn).get_table_names())
        tables = [t for t in EVENT_TABLES if t in present]
        if tables:
            conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)}")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test runs on a fresh SQLite file and on the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/projections.db"
    url = str(request.getfixturevalue("postgres_url"))
    clean(url)
    return url


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Service:
    client: TestClient
    store: Store
    clock: Clock

    def feed(self, *histories: History) -> Outcome:
        return self.feed_envelopes(envelopes_of(*histories))

    def feed_envelopes(self, envelopes: list[dict[str, Any]]) -> Outcome:
        return self.store.apply_events([read_listed(e) for e in envelopes])

    def get(self, path: str, who: str = "viewer", **params: Any) -> Any:
        answer = self.client.get(path, params=params, headers=auth(who))
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def clock() -> Clock:
    return Clock(day(30))


@pytest.fixture
def service(db_url: str, clock: Clock) -> Iterator[Service]:
    app = build_app(
        Settings(projections_db_url=db_url),
        rules=load_rulebook(),
        principals=PRINCIPALS,
        clock=clock,
    )
    with TestClient(app) as client:
        yield Service(client, app.state.store, clock)


def snapshot(
    engine: sa.Engine, *, with_positions: bool = False
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every event-derived table, in primary-key order; a tally's rows that sum
    to nothing (what moved away again) are none."""
    from projections.adapters.schema import LIVE

    skip = set() if with_positions else {"projection_position"}
    found: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name, table in LIVE.by_canonical_name().items():
            if name in skip:
                continue
            order = list(table.primary_key.columns)
            query = sa.select(table).order_by(*order)
            if name.startswith("bi_tally_"):
                measures = [c for c in table.columns if not c.primary_key]
                query = query.where(sa.or_(*(c != 0 for c in measures)))
            found[name] = [tuple(row) for row in conn.execute(query)]
    return found


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A database no migration has run on yet."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path}/projections.db", writer=True)
        yield engine
        engine.dispose()
        return
    with fresh_database("oppstream_migration") as url:
        engine = create_engine(url, writer=True)
        yield engine
        engine.dispose()


def alembic(engine: sa.Engine, verb: str, revision: str) -> None:
    with engine.begin() as conn:
        getattr(command, verb)(migrate.alembic_config(conn), revision)
