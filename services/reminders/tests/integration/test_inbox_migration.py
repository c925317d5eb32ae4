"""Migration 0004 on a database of 0003 with reminders fired: the inbox finds them by their
owner, taken from the reminder bytes (SQLite and PostgreSQL)."""

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from reminders.adapters.delivery_store import InboxQuery
from reminders.adapters.schema import MIGRATIONS
from reminders.adapters.store import Store
from services.reminders.tests.helpers import DAY, T0
from tests.support.postgres import fresh_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/reminders.db"
        return
    with fresh_database("oppstream_reminders_0004") as url:
        yield url


def _upgrade(store: Store, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def test_reminders_fired_before_the_inbox_are_found_by_their_owner(empty_url: str) -> None:
    store = Store(empty_url)
    _upgrade(store, "0003")
    reminder = {
        "reminder_id": "r-1",
        "kind": "follow_up",
        "opportunity_id": "o-1",
        "owner_id": "rep-1",
        "team_id": "east",
        "rule_id": "ka-default",
        "due_at": "2026-11-09T02:30:00Z",
        "fired_at": "2026-11-09T02:30:00Z",
        "detail": {"rule_id": "ka-default"},
    }
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO reminders_fired (opportunity_id, reminder_id, partition, kind, "
                "rule_id, team_id, due_at, fired_at, reminder) VALUES "
                "(:o, :r, 0, 'follow_up', 'ka-default', 'east', :at, :at, :bytes)"
            ),
            {"o": "o-1", "r": "r-1", "at": T0 + 7 * DAY, "bytes": orjson.dumps(reminder)},
        )
    _upgrade(store, "head")
    try:
        [found] = store.inbox(InboxQuery("rep-1", None, None, None, 50))
        assert found == {**reminder, "deliveries": []}
        assert store.inbox(InboxQuery("rep-2", None, None, None, 50)) == []
    finally:
        store.close()
