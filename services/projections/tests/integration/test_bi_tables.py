"""The tables and views BI tools read (SPEC §4.3), on SQLite and PostgreSQL."""

from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from projections.adapters.bi_views import VIEW_NAMES, create_views, drop_views
from projections.adapters.migrate import VERSION_TABLE
from projections.adapters.schema import LIVE, pipeline_stage
from services.projections.tests.cohort import cohort
from services.projections.tests.conftest import Service


def rows(service: Service, sql: str) -> list[dict[str, object]]:
    with service.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql)).mappings()]


def test_the_migrations_build_the_schema_the_code_writes(service: Service) -> None:
    metadata = sa.MetaData()
    for table in [*LIVE.metadata.sorted_tables, pipeline_stage]:
        table.to_metadata(metadata)
    with service.store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_the_migrated_views_are_the_views_a_rebuild_creates(service: Service) -> None:
    def columns(conn: sa.Connection) -> dict[str, list[str]]:
        inspector = sa.inspect(conn)
        return {v: [c["name"] for c in inspector.get_columns(v)] for v in VIEW_NAMES}

    with service.store.engine.begin() as conn:
        migrated = columns(conn)
        drop_views(conn)
        create_views(conn)
        created = columns(conn)

    assert migrated == created
    assert "conversion_working_days" in migrated["bi_dwell"]


def test_bi_funnel_view_gives_the_reach_and_conversion_of_each_stage(service: Service) -> None:
    service.feed(*cohort().values())

    found = rows(
        service,
        "SELECT stage, reached, reached_next, conversion_rate, created_month, tier, ownership "
        "FROM bi_funnel WHERE pipeline_id = 'new' ORDER BY stage_index",
    )

    assert [(r["stage"], r["reached"], r["reached_next"]) for r in found] == [
        ("initial_contact", 6, 3),
        ("requirements", 3, 3),
        ("proposal", 3, 2),
        ("negotiation", 2, 1),
        ("signing", 1, 1),
    ]
    assert [float(r["conversion_rate"]) for r in found] == pytest.approx([0.5, 1, 2 / 3, 0.5, 1])
    assert {(r["created_month"], r["tier"], r["ownership"]) for r in found} == {
        ("2026-03", "KA", "SOE")
    }


def test_bi_dwell_view_gives_conversion_days_and_open_visits(service: Service) -> None:
    service.feed(*cohort().values())

    found = {
        r["stage"]: r for r in rows(service, "SELECT * FROM bi_dwell WHERE pipeline_id = 'new'")
    }

    assert float(found["initial_contact"]["conversion_days"]) == pytest.approx(2.5)
    assert float(found["proposal"]["conversion_days"]) == pytest.approx(4.0)
    assert found["initial_contact"]["open_visits"] == 2
    assert found["proposal"]["open_visits"] == 1
    # Ages count to the database's now, long after March 2026.
    assert float(found["proposal"]["open_mean_age_days"]) > 23
    # In working days (test_metrics.py works them out): A 2⅝ and E 1 in requirements.
    assert float(found["requirements"]["conversion_working_days"]) == pytest.approx(1.8125)
    assert found["requirements"]["visits_in_working_days"] == 2
    assert float(found["requirements"]["total_working_days"]) == pytest.approx(3.625)


def test_bi_win_rate_view_gives_the_win_rate_at_each_stage(service: Service) -> None:
    service.feed(*cohort().values())

    found = rows(
        service,
        "SELECT stage, won, lost, closed, win_rate FROM bi_win_rate "
        "WHERE pipeline_id = 'new' ORDER BY stage_index",
    )

    assert [(r["won"], r["lost"], r["closed"]) for r in found] == [
        (1, 2, 3),
        (1, 1, 2),
        (1, 1, 2),
        (1, 1, 2),
        (1, 0, 1),
    ]
    assert [float(r["win_rate"]) for r in found] == pytest.approx([1 / 3, 0.5, 0.5, 0.5, 1.0])


def test_bi_opportunity_has_one_row_per_opportunity_in_its_current_state(service: Service) -> None:
    histories = cohort()
    service.feed(*histories.values())

    found = {r["id"]: r for r in rows(service, "SELECT * FROM bi_opportunity")}

    assert len(found) == 7
    a, b = found[histories["A"].id], found[histories["B"].id]
    assert (a["status"], a["stage"], a["version"], a["furthest_stage"]) == (
        "won",
        "signing",
        6,
        "signing",
    )
    assert Decimal(str(a["won_amount"])) == Decimal("1000.00")
    assert (b["status"], b["lost_reason"], b["furthest_stage"], b["closed_stage"]) == (
        "lost",
        "price",
        "negotiation",
        "negotiation",
    )
    assert found[histories["D"].id]["status"] == "voided"
    assert found[histories["F"].id]["paused_at"] is not None


def test_bi_stage_visit_has_a_visit_per_stage_entry_and_bi_event_every_event(
    service: Service,
) -> None:
    b = cohort()["B"]
    service.feed(b)

    visits = rows(
        service,
        "SELECT stage, exit_kind, paused_seconds, dwell_seconds, paused_working_days, working_days "
        "FROM bi_stage_visit ORDER BY visit_no",
    )
    events = rows(service, "SELECT version, event_type, payload FROM bi_event ORDER BY version")

    assert [(v["stage"], v["exit_kind"]) for v in visits] == [
        ("initial_contact", "advanced"),
        ("proposal", "advanced"),
        ("negotiation", "reverted"),
        ("proposal", "advanced"),
        ("negotiation", "lost"),
    ]
    assert visits[1]["paused_seconds"] == 2 * 86400
    assert visits[1]["dwell_seconds"] == 4 * 86400
    # Fri d4 09:00 → Thu d10 09:00 is 4 working days; paused Sun d6 → Tue d8 09:00, 1⅜ of them.
    assert (visits[1]["paused_working_days"], visits[1]["working_days"]) == (1.375, 2.625)
    assert len(events) == len(b.envelopes)
    assert events[1]["event_type"] == "StageAdvanced"
    assert '"skipped":["requirements"]' in str(events[1]["payload"])
