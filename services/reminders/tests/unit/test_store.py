"""The reminders database: migrations, the due-time index, rising versions and positions,
times kept in UTC (SQLite and PostgreSQL)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from contracts import topics
from reminders.adapters.schema import VERSION_TABLE, metadata
from reminders.adapters.store import Store
from reminders.application.ports import Planned
from reminders.domain.facts import evolve
from services.reminders.tests.helpers import SHANGHAI, T0, Harness, Opportunity


def test_migrating_twice_changes_nothing_and_matches_the_tables_the_code_uses(
    store: Store,
) -> None:
    store.migrate()
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == "0004"


def test_a_tick_reads_due_timers_on_the_due_time_index(store: Store) -> None:
    now = datetime.now(UTC)
    with store.begin() as tx:
        statement = sa.text(
            "SELECT opportunity_id FROM reminders_opportunity "
            "WHERE next_due_at <= :now AND partition IN (0, 1) ORDER BY next_due_at LIMIT 100"
        )
        if store.is_postgres:
            tx.conn.execute(sa.text("SET LOCAL enable_bitmapscan TO off"))
            tx.conn.execute(sa.text("SET LOCAL enable_seqscan TO off"))
            plan = tx.conn.execute(sa.text("EXPLAIN " + str(statement)), {"now": now}).all()
        else:
            plan = tx.conn.execute(
                sa.text("EXPLAIN QUERY PLAN " + str(statement)), {"now": now}
            ).all()
    assert "reminders_opportunity_due" in " ".join(str(row) for row in plan)


async def test_a_version_never_goes_down(harness: Harness, store: Store) -> None:
    o = Opportunity("KA")
    created = o.create(T0)
    harness.feed(created, o.follow_up(T0 + timedelta(days=1)))
    stale = evolve(None, created, 0)
    assert stale is not None
    with store.begin() as tx:
        tx.save([Planned(stale, None)])  # a copy that lost its partition, finishing late
    facts, due = store.facts(o.id) or pytest.fail("no facts")
    assert facts.version == 2
    assert due is not None


def test_a_position_never_goes_back(store: Store) -> None:
    with store.begin() as tx:
        tx.advance(topics.OPPORTUNITY_EVENTS, {0: 10, 1: 5})
    with store.begin() as tx:
        tx.advance(topics.OPPORTUNITY_EVENTS, {0: 7, 1: 9})
    assert store.positions(topics.OPPORTUNITY_EVENTS, [0, 1, 2]) == {0: 10, 1: 9}


async def test_times_come_back_aware_and_in_utc(harness: Harness, store: Store) -> None:
    o = Opportunity("KA")
    harness.feed(o.create(T0.astimezone(SHANGHAI)))
    facts, due = store.facts(o.id) or pytest.fail("no facts")
    assert facts.last_progress_at == T0
    assert facts.last_progress_at.tzinfo is UTC
    assert due == T0 + timedelta(days=7)


def test_a_naive_time_is_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/r.db")
    store.migrate()
    o = Opportunity("KA")
    facts = evolve(None, o.create(T0), 0)
    assert facts is not None
    with pytest.raises(sa.exc.StatementError, match="naive"), store.begin() as tx:
        tx.save([Planned(facts, datetime(2026, 1, 1))])  # noqa: DTZ001 - the point of the test
    store.close()
