"""Fixtures of the reminders service's tests: the store on SQLite and on real PostgreSQL,
the rules, a harness on a hand-moved clock."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from contracts.rules import Rulebook, load_rulebook
from reminders.adapters.schema import metadata
from reminders.adapters.store import Store
from reminders.domain.clock import ManualClock
from reminders.domain.timers import Planner, managers_by_team
from services.reminders.tests.helpers import SHANGHAI, T0, Harness
from tests.support.postgres import fresh_database
from tests.support.principals import PRINCIPALS


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_database("oppstream_reminders") as url:
        store = Store(url)
        store.migrate()
        store.close()
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        found = Store(f"sqlite:///{tmp_path}/reminders.db")
        found.migrate()
    else:
        found = Store(request.getfixturevalue("postgres_url"))
        with found.engine.begin() as conn:
            for table in metadata.sorted_tables:
                conn.execute(sa.text(f"TRUNCATE {table.name}"))
    yield found
    found.close()


@pytest.fixture(scope="session")
def rules() -> Rulebook:
    return load_rulebook()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def harness(store: Store, rules: Rulebook, clock: ManualClock) -> Harness:
    planner = Planner(rules, SHANGHAI, managers_by_team(PRINCIPALS.all))
    return Harness(store, planner, clock)
