"""The BI views of SPEC §9 (`bi_target`, `bi_competition_standing`) give the API's figures, on
SQLite and PostgreSQL; revision 0008 creates them and takes them away."""

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from projections.adapters import migrate
from projections.adapters.columns import CENT
from services.projections.tests.conftest import Clock, Service, alembic
from services.projections.tests.integration.test_plans import (
    NOW,
    at,
    attainment_fixture,
    standings_fixture,
)
from services.projections.tests.plans import CompetitionHistory


@pytest.fixture(autouse=True)
def _after_the_fixtures(clock: Clock) -> None:
    clock.now = NOW


def rows(service: Service, sql: str, **params: str) -> list[dict[str, Any]]:
    with service.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def money(value: object) -> str:
    return str(Decimal(str(value)).quantize(CENT))


def test_bi_target_has_each_target_as_it_stands_with_its_changes(service: Service) -> None:
    service.feed(*attainment_fixture())

    found = rows(service, "SELECT * FROM bi_target ORDER BY scope, scope_id")
    served = service.get("/attainment", period="2026-Q2")["items"]

    # east set once (20000); rep-1 allocated 5000 in east, then adjusted to 8000.
    assert [
        (r["period"], r["scope"], r["scope_id"], r["metric"], r["team_id"], r["changes"])
        for r in found
    ] == [
        ("2026-Q2", "rep", "rep-1", "won_amount", "east", 2),
        ("2026-Q2", "team", "east", "won_amount", None, 1),
    ]
    assert {(r["scope"], r["scope_id"], r["metric"]): money(r["value"]) for r in found} == {
        (i["scope"], i["scope_id"], i["metric"]): i["target"]
        for i in served
        if i["target"] is not None
    }
    assert [(r["set_by"], str(r["set_at"])[:10]) for r in found] == [
        ("manager-east", "2026-05-10"),
        ("manager-east", "2026-04-01"),
    ]


def standing_rows(service: Service, competition: str) -> list[tuple[Any, ...]]:
    found = rows(
        service,
        "SELECT rank, owner_id, team_id, value, metric FROM bi_competition_standing "
        "WHERE competition_id = :id AND (currency IS NULL OR currency = 'CNY') "
        "ORDER BY rank, owner_id",
        id=competition,
    )
    return [
        (
            r["rank"],
            r["owner_id"],
            r["team_id"],
            money(r["value"]) if r["metric"] == "won_amount" else int(r["value"]),
        )
        for r in found
    ]


def served_standings(service: Service, competition: str) -> list[tuple[Any, ...]]:
    """The API's standings but the reps it lists at 0 with nothing credited (the view has a
    row per owner credited with an event); they rank last, so the other ranks are the same."""
    report = service.get(f"/competitions/{competition}/standings")
    return [
        (s["rank"], s["owner_id"], s["team_id"], s["value"])
        for s in report["standings"]
        if s["value"] not in (0, "0.00")
    ]


def test_bi_competition_standing_ranks_as_the_api_does(service: Service) -> None:
    service.feed(*standings_fixture())

    # rep-2 and rep-3 tie at 2 (test_plans.py works the figures out).
    assert standing_rows(service, "spring") == served_standings(service, "spring")
    assert standing_rows(service, "spring")[1:3] == [
        (2, "rep-2", "east", "3000.00"),
        (2, "rep-3", "west", "3000.00"),
    ]
    assert standing_rows(service, "ka-only") == served_standings(service, "ka-only")


def test_bi_competition_standing_counts_only_the_teams_and_types_named(service: Service) -> None:
    window = {"from": at(4, 1, 0).isoformat(), "to": at(7, 1, 0).isoformat()}
    west = CompetitionHistory(
        at(3, 30), "west-only", metric="won_count", team_ids=["west"], types=["new"], **window
    )
    service.feed(*standings_fixture(), west)

    # Wins credited to west: A2 (rep-3, after it came to west), A6 (rep-9): a tie at 1.
    assert standing_rows(service, "west-only") == [(1, "rep-3", "west", 1), (1, "rep-9", "west", 1)]
    assert standing_rows(service, "west-only") == served_standings(service, "west-only")


def test_bi_competition_standing_keeps_other_currencies_apart(service: Service) -> None:
    service.feed(*standings_fixture())

    found = rows(
        service,
        "SELECT owner_id, value, events, rank FROM bi_competition_standing "
        "WHERE competition_id = 'spring' AND currency = 'USD'",
    )

    # A5: rep-1's win of 9000 USD, which the API's CNY standings leave out.
    assert [(r["owner_id"], money(r["value"]), r["events"], r["rank"]) for r in found] == [
        ("rep-1", "9000.00", 1, 1)
    ]


def test_revision_0008_creates_the_views_and_goes_back(empty: sa.Engine) -> None:
    alembic(empty, "upgrade", "0007")

    alembic(empty, "upgrade", "0008")

    assert migrate.current_revision(empty) == "0008"
    with empty.connect() as conn:
        views = set(sa.inspect(conn).get_view_names())
        assert conn.execute(sa.text("SELECT COUNT(*) FROM bi_target")).scalar_one() == 0
    assert {"bi_target", "bi_competition_standing"} <= views
    alembic(empty, "downgrade", "0007")
    with empty.connect() as conn:
        views = set(sa.inspect(conn).get_view_names())
    assert views == {"bi_funnel", "bi_dwell", "bi_win_rate"}
