"""`classified_by` (SPEC §8.2) in the read model: the column of `bi_opportunity`, the filter of
every report, the views' grouping and the rebuild, on SQLite and PostgreSQL."""

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from contracts.rules import load_rulebook
from projections.adapters import migrate
from projections.adapters.feed import read_listed
from projections.adapters.rows import write_pipeline_stages
from projections.adapters.schema import LIVE
from projections.domain.projection import Projector
from projections.domain.stage_index import PipelineIndex
from projections.domain.state import STATE_FIELDS
from projections.entrypoints import rebuild
from services.projections.tests.conftest import Service, alembic
from services.projections.tests.history import History, day, envelopes_of
from services.projections.tests.integration.test_rebuild import (
    TOKEN,
    feed,
    live_by_consumer,
    settings_of,
)
from tests.support.principals import auth

CLOSES = date(2026, 4, 20)


def classified(service: Service) -> dict[str, str | None]:
    """Opportunity id → `bi_opportunity.classified_by`."""
    with service.store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, classified_by FROM bi_opportunity"))
        return {row.id: row.classified_by for row in rows}


def histories() -> dict[str, History]:
    """Two opportunities of customers the rule `ka-revenue` classified (one won, one open and
    idle), one whose tier was given by hand (open), one recorded before classification (lost)."""
    return {
        "won": History(day(0), classified_by="ka-revenue")
        .advance("signing", day(1), ("requirements", "proposal", "negotiation"))
        .win(day(2), "700.00"),
        "idle": History(
            day(0), classified_by="ka-revenue", amount="100.00", expected_close_on=CLOSES
        ),
        "manual": History(
            day(1), classified_by="manual", amount="50.00", expected_close_on=CLOSES
        ).follow_up(day(25)),
        "before": History(day(0)).advance("requirements", day(1)).lose(day(3)),
    }


def test_bi_opportunity_holds_the_rule_that_gave_the_tier(service: Service) -> None:
    h = histories()
    service.feed(*h.values())

    assert classified(service) == {
        h["won"].id: "ka-revenue",
        h["idle"].id: "ka-revenue",
        h["manual"].id: "manual",
        h["before"].id: None,
    }


def _new(report: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in report["pipelines"] if p["pipeline_id"] == "new")


def test_the_funnel_dwell_and_win_rates_filter_by_classified_by(service: Service) -> None:
    service.feed(*histories().values())

    funnel = service.get("/funnel", classified_by="ka-revenue")
    dwell = service.get("/dwell", classified_by="ka-revenue")
    rates = service.get("/win-rates", classified_by="ka-revenue")
    everyone = service.get("/dwell")

    assert _new(funnel)["opportunities"] == 2
    assert (_new(funnel)["won"], _new(funnel)["lost"]) == (1, 0)
    assert _new(service.get("/funnel"))["opportunities"] == 4
    # The initial contact visits completed: the won one's here, the lost one's too everywhere.
    assert _new(dwell)["stages"][0]["completed_visits"] == 1
    assert _new(everyone)["stages"][0]["completed_visits"] == 2
    assert (_new(rates)["won"], _new(rates)["lost"]) == (1, 0)
    manual = service.get("/win-rates", classified_by="manual")
    assert (_new(manual)["won"], _new(manual)["lost"]) == (0, 0)


def test_the_forecast_stale_and_leaderboard_filter_by_classified_by(service: Service) -> None:
    h = histories()
    service.feed(*h.values())

    forecast = service.get("/forecast", classified_by="manual")
    stale = service.get("/stale", classified_by="ka-revenue")
    board = service.get("/leaderboard", classified_by="ka-revenue")

    assert [(m["month"], m["amount"]) for m in forecast["months"]] == [("2026-04", "50.00")]
    assert [(i["id"], i["classified_by"]) for i in stale["items"]] == [(h["idle"].id, "ka-revenue")]
    assert service.get("/stale")["total"] == 2
    assert [(o["owner_id"], o["won_amount"]) for o in board["periods"][0]["owners"]] == [
        ("rep-1", "700.00")
    ]
    assert service.get("/leaderboard", classified_by="manual")["periods"] == []


def test_the_filter_reads_the_opportunities_as_they_were_at_as_of(service: Service) -> None:
    service.feed(*histories().values())

    before_the_win = service.get(
        "/win-rates", classified_by="ka-revenue", as_of=day(1.5).isoformat()
    )
    later = service.get("/funnel", classified_by="manual", as_of=day(0.5).isoformat())

    assert (_new(before_the_win)["won"], _new(before_the_win)["lost"]) == (0, 0)
    assert _new(later)["opportunities"] == 0


def test_an_unknown_classification_rule_matches_nothing(service: Service) -> None:
    service.feed(*histories().values())

    assert _new(service.get("/funnel", classified_by="no-such-rule"))["opportunities"] == 0


@pytest.mark.parametrize("value", ["x" * 101, "a\x00b"])
def test_a_bad_classified_by_is_refused_naming_it(service: Service, value: str) -> None:
    answer = service.client.get("/funnel", params={"classified_by": value}, headers=auth("viewer"))

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "classified_by"]


def test_the_bi_views_group_by_classified_by(service: Service) -> None:
    service.feed(*histories().values())

    with service.store.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT classified_by, SUM(reached) AS reached, SUM(won) AS won FROM bi_funnel "
                "WHERE pipeline_id = 'new' AND stage_index = 0 GROUP BY classified_by"
            )
        )
        funnel = {row.classified_by: (row.reached, row.won) for row in rows}
        rates = conn.execute(
            sa.text(
                "SELECT classified_by, won, lost FROM bi_win_rate "
                "WHERE pipeline_id = 'new' AND stage_index = 0"
            )
        )
        win_rates = {row.classified_by: (row.won, row.lost) for row in rates}
        dwell = conn.execute(
            sa.text(
                "SELECT DISTINCT classified_by FROM bi_dwell WHERE pipeline_id = 'new' "
                "AND completed_visits > 0"
            )
        )
        completed = {row.classified_by for row in dwell}

    assert funnel == {"ka-revenue": (2, 1), "manual": (1, 0), None: (1, 0)}
    assert win_rates == {"ka-revenue": (1, 0), None: (0, 1)}
    assert completed == {"ka-revenue", None}


def test_a_rebuild_fills_classified_by_as_the_consumer_does(service: Service) -> None:
    h = histories()
    envelopes = envelopes_of(*h.values())
    live_by_consumer(service, envelopes)
    expected = classified(service)

    code = rebuild.run(
        "http://opportunity", TOKEN, settings_of(service), transport=feed(envelopes), progress=False
    )

    assert code == 0
    assert classified(service) == expected
    assert expected[h["won"].id] == "ka-revenue"


# The state's fields up to `classified_by` (the ones after it came with later revisions).
STATE_AT_0005 = STATE_FIELDS.index("classified_by")


def test_revision_0006_adds_classified_by_to_recorded_rows_and_views_and_goes_back(
    empty: sa.Engine,
) -> None:
    alembic(empty, "upgrade", "0005")
    rules = load_rulebook()
    created = History(day(0)).envelopes[0]
    applied = Projector(PipelineIndex(rules), ZoneInfo("Asia/Shanghai")).apply(
        None, read_listed(created)
    )
    assert applied is not None
    row = {name: getattr(applied.state, name) for name in STATE_FIELDS[:STATE_AT_0005]}
    with empty.begin() as conn:
        write_pipeline_stages(conn, rules)
        conn.execute(sa.insert(LIVE.opportunity), [row])

    alembic(empty, "upgrade", "0006")

    assert migrate.current_revision(empty) == "0006"
    with empty.connect() as conn:
        assert conn.execute(sa.text("SELECT classified_by FROM bi_opportunity")).all() == [(None,)]
        funnel = conn.execute(sa.text("SELECT tier, classified_by, reached FROM bi_funnel"))
        assert ("KA", None, 1) in funnel.all()
        for view in ("bi_dwell", "bi_win_rate"):
            conn.execute(sa.text(f"SELECT classified_by FROM {view}")).all()  # noqa: S608
    alembic(empty, "downgrade", "0005")
    with empty.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("bi_opportunity")}
        funnel = conn.execute(
            sa.text("SELECT tier, SUM(reached) FROM bi_funnel WHERE stage_index = 0 GROUP BY tier")
        )
        assert funnel.all() == [("KA", 1)]
    assert "classified_by" not in columns
