"""Attainment, competition standings, forecast categories and deferrals (SPEC §9, issue 14):
hand-computed fixtures through the HTTP API, on SQLite and PostgreSQL, equal after a rebuild."""

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from projections.adapters import migrate
from projections.adapters.schema import LIVE
from projections.entrypoints import rebuild
from services.projections.tests.conftest import Clock, Service, alembic, snapshot
from services.projections.tests.history import History, envelopes_of
from services.projections.tests.integration.test_rebuild import (
    TOKEN,
    feed,
    live_by_consumer,
    settings_of,
)
from services.projections.tests.plans import CompetitionHistory, TargetHistory
from tests.support.principals import auth

NOW = datetime(2026, 8, 1, 9, tzinfo=ZoneInfo("Asia/Shanghai"))


def at(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(autouse=True)
def _august(clock: Clock) -> None:
    clock.now = NOW


# -- attainment ---------------------------------------------------------------------------
#
#   targets (2026-Q2, won_amount): team east 20000 set 1 Apr; rep-1 5000 allocated 1 Apr,
#   adjusted to 8000 on 10 May.
#   P  rep-1 created 2 Apr (3000) · won 20 May (3000)
#   Q  rep-2 created 25 Mar (before Q2) · assigned to rep-1 5 Apr · won 10 Jun (2000)
#   R  rep-1 created 15 Apr (4000, closes 30 Jun) · proposal 16 Apr · open
#   S  rep-2 created 3 Apr · lost 20 Apr at initial contact


def attainment_fixture() -> list[Any]:
    east = TargetHistory("2026-Q2", "team", "east", "won_amount").set(at(4, 1), "20000.00")
    rep_1 = (
        TargetHistory("2026-Q2", "rep", "rep-1", "won_amount", team_id="east")
        .set(at(4, 1, 10), "5000.00")
        .adjust(at(5, 10), "8000.00")
    )
    p = History(at(4, 2), amount="3000.00").advance("proposal", at(4, 10)).win(at(5, 20), "3000.00")
    q = (
        History(at(3, 25), owner_id="rep-2", amount="2000.00")
        .assign("rep-1", at(4, 5), "east")
        .win(at(6, 10), "2000.00")
    )
    r = History(at(4, 15), amount="4000.00", expected_close_on=date(2026, 6, 30)).advance(
        "proposal", at(4, 16)
    )
    s = History(at(4, 3), owner_id="rep-2").lose(at(4, 20))
    return [east, rep_1, p, q, r, s]


def attainment(service: Service, who: str = "viewer", **params: Any) -> dict[tuple[str, str], Any]:
    report = service.get("/attainment", who, period="2026-Q2", **params)
    assert report["period"] == "2026-Q2"
    return {(i["scope"], i["scope_id"]): i for i in report["items"]}


def test_attainment_before_the_adjustment_and_before_any_win(service: Service) -> None:
    service.feed(*attainment_fixture())

    items = attainment(service, metric="won_amount", as_of=at(5, 1, 0).isoformat())

    # No win yet; R (4000) is open at proposal, expected in Q2. The only closed opportunity
    # is S, lost at initial contact: no closed one reached proposal, so its rules probability
    # 0.4 stands in: 4000 × 0.4 = 1600 for rep-1, east and the company. rep-2 created S in Q2
    # (an actual of new_opportunities), so it has an item too.
    assert items == {
        ("company", "company"): _item("company", "company", None, "0.00", None, "1600.00"),
        ("team", "east"): _item("team", "east", "20000.00", "0.00", 0.0, "1600.00", "20000.00"),
        ("rep", "rep-1"): _item("rep", "rep-1", "5000.00", "0.00", 0.0, "1600.00", "5000.00"),
        ("rep", "rep-2"): _item("rep", "rep-2", None, "0.00", None, "0.00"),
    }


def test_attainment_after_the_adjustment_takes_the_target_as_it_stood_then(
    service: Service,
) -> None:
    service.feed(*attainment_fixture())

    items = attainment(service, metric="won_amount", as_of=at(5, 15).isoformat())

    # 15 May: rep-1's target is 8000 since 10 May; still no win: gap 8000.
    assert items[("rep", "rep-1")] == _item(
        "rep", "rep-1", "8000.00", "0.00", 0.0, "1600.00", "8000.00"
    )


def test_attainment_after_the_wins_credits_the_owner_at_the_win(service: Service) -> None:
    service.feed(*attainment_fixture())

    items = attainment(service, metric="won_amount", as_of=at(6, 15).isoformat())

    # P 3000 (20 May) and Q 2000 (10 Jun, rep-1's since 5 Apr, though rep-2 created it):
    # 5000 for rep-1, east and the company. rep-1: 5000 / 8000 = 0.625, gap 3000; east
    # 5000 / 20000 = 0.25, gap 15000. Closed that reached proposal: P, Q won → win rate 1:
    # R weighs 4000.
    assert items[("rep", "rep-1")] == _item(
        "rep", "rep-1", "8000.00", "5000.00", 0.625, "4000.00", "3000.00"
    )
    assert items[("team", "east")] == _item(
        "team", "east", "20000.00", "5000.00", 0.25, "4000.00", "15000.00"
    )
    assert items[("company", "company")]["actual"] == "5000.00"


def test_attainment_counts_creations_and_wins_per_metric(service: Service) -> None:
    service.feed(*attainment_fixture())

    report = service.get("/attainment", period="2026-Q2", scope="rep", scope_id="rep-1")

    # Every metric without `metric`. Created in Q2 by rep-1: P, R (Q in March); won: P, Q;
    # won_count weighs R by the win rate at proposal: 1.
    figures = {i["metric"]: (i["target"], i["actual"], i["weighted_open"]) for i in report["items"]}
    assert figures == {
        "won_amount": ("8000.00", "5000.00", "4000.00"),
        "won_count": (None, 2, 1.0),
        "new_opportunities": (None, 2, None),
    }


def test_attainment_shows_a_rep_the_own_the_team_and_the_company(service: Service) -> None:
    service.feed(*attainment_fixture())

    assert set(attainment(service, "rep-1", metric="won_amount")) == {
        ("company", "company"),
        ("team", "east"),
        ("rep", "rep-1"),
    }
    assert set(attainment(service, "manager-east", metric="won_amount")) == {
        ("company", "company"),
        ("team", "east"),
        ("rep", "rep-1"),
        ("rep", "rep-2"),
    }
    assert set(attainment(service, "manager-west", metric="won_amount")) == {("company", "company")}


@pytest.mark.parametrize("period", [None, "2026-Q5", "26", "2026-13"])
def test_attainment_refuses_a_missing_or_bad_period_naming_it(
    service: Service, period: str | None
) -> None:
    params = {} if period is None else {"period": period}

    answer = service.client.get("/attainment", params=params, headers=auth("viewer"))

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "period"]


def _item(
    scope: str,
    scope_id: str,
    target: str | None,
    actual: str,
    attained: float | None,
    weighted: str,
    gap: str | None = None,
) -> dict[str, Any]:
    return {
        "scope": scope,
        "scope_id": scope_id,
        "metric": "won_amount",
        "target": target,
        "actual": actual,
        "attainment": attained,
        "weighted_open": weighted,
        "gap": gap,
    }


# -- standings ----------------------------------------------------------------------------
#
#   competition spring: won_amount, [1 Apr, 1 Jul), every team; ka-only: won_count, KA only.
#   A1 rep-1 created 1 Mar · won 10 Apr (5000)
#   A2 rep-2 created 2 Apr · assigned to rep-3 (west) 1 May · won 20 May (3000)
#   A3 pooled (east) created 3 Apr · claimed by rep-2 5 Apr · won 25 Apr (3000)
#   A4 rep-1 created 6 Apr · won 2 Jul (after the competition)
#   A5 rep-1 created 7 Apr · won 8 Apr in USD (not the company currency)
#   A6 rep-9 (west, in no principals file) SMB created 8 Apr · won 30 Apr (1000)


def standings_fixture() -> list[Any]:
    window = {"from": at(4, 1, 0).isoformat(), "to": at(7, 1, 0).isoformat()}
    return [
        CompetitionHistory(at(3, 30), "spring", metric="won_amount", **window),
        CompetitionHistory(at(3, 30), "ka-only", metric="won_count", tiers=["KA"], **window),
        History(at(3, 1)).win(at(4, 10), "5000.00"),
        History(at(4, 2), owner_id="rep-2")
        .assign("rep-3", at(5, 1), "west")
        .win(at(5, 20), "3000.00"),
        History(at(4, 3), owner_id=None)
        .assign("rep-2", at(4, 5), claimed=True)
        .win(at(4, 25), "3000.00"),
        History(at(4, 6)).win(at(7, 2), "9000.00"),
        History(at(4, 7)).win(at(4, 8), "9000.00", currency="USD"),
        History(at(4, 8), owner_id="rep-9", team_id="west", tier="SMB").win(at(4, 30), "1000.00"),
    ]


def standings(service: Service, competition: str, **params: Any) -> list[tuple[Any, ...]]:
    report = service.get(f"/competitions/{competition}/standings", **params)
    assert report["id"] == competition
    return [(s["rank"], s["owner_id"], s["team_id"], s["value"]) for s in report["standings"]]


def test_standings_share_a_rank_on_a_tie_and_credit_the_owner_at_the_win(
    service: Service,
) -> None:
    service.feed(*standings_fixture())

    # rep-1 5000 (A1; A4 after the window, A5 in USD); rep-2 3000 (A3, claimed from the
    # pool); rep-3 3000 (A2, won after it came to rep-3: not rep-2's); rep-9 1000 (A6).
    # rep-2 and rep-3 tie at rank 2, in owner id order; the next is 4. The principals file's
    # other reps (rep-4, rep-5, rep-6), credited with nothing, stand at 0 and share rank 5.
    assert standings(service, "spring") == [
        (1, "rep-1", "east", "5000.00"),
        (2, "rep-2", "east", "3000.00"),
        (2, "rep-3", "west", "3000.00"),
        (4, "rep-9", "west", "1000.00"),
        (5, "rep-4", "east", "0.00"),
        (5, "rep-5", "west", "0.00"),
        (5, "rep-6", "west", "0.00"),
    ]


def test_standings_as_of_a_day_count_the_wins_until_then(service: Service) -> None:
    service.feed(*standings_fixture())

    # 10 May: A1, A3, A6 are won; A2 not yet: rep-3 (a rep of the principals file) stands at 0.
    assert standings(service, "spring", as_of=at(5, 10).isoformat()) == [
        (1, "rep-1", "east", "5000.00"),
        (2, "rep-2", "east", "3000.00"),
        (3, "rep-9", "west", "1000.00"),
        (4, "rep-3", "west", "0.00"),
        (4, "rep-4", "east", "0.00"),
        (4, "rep-5", "west", "0.00"),
        (4, "rep-6", "west", "0.00"),
    ]


def test_standings_count_only_the_tiers_named(service: Service) -> None:
    service.feed(*standings_fixture())

    # KA wins in the window, any currency: A1 (rep-1), A2 (rep-3), A3 (rep-2), A5 (rep-1,
    # USD: counted, it is a count); A6 is SMB (rep-9 is not a rep of the principals file, so
    # not listed); the principals file's reps credited with nothing stand at 0.
    assert standings(service, "ka-only") == [
        (1, "rep-1", "east", 2),
        (2, "rep-2", "east", 1),
        (2, "rep-3", "west", 1),
        (4, "rep-4", "east", 0),
        (4, "rep-5", "west", 0),
        (4, "rep-6", "west", 0),
    ]


def test_competitions_are_listed_newest_first_for_any_role(service: Service) -> None:
    summer = CompetitionHistory(
        at(5, 1),
        "summer",
        metric="follow_ups",
        team_ids=["east"],
        types=["new"],
        **{"from": at(6, 1, 0).isoformat(), "to": at(9, 1, 0).isoformat()},
    )
    service.feed(*standings_fixture(), summer)

    listed = service.get("/competitions", "rep-2")["competitions"]

    # summer defined 1 May; spring and ka-only both 30 Mar, then by id.
    assert [c["id"] for c in listed] == ["summer", "ka-only", "spring"]
    assert listed[0] == {
        "id": "summer",
        "name": "春季冲刺",
        "metric": "follow_ups",
        "from": "2026-05-31T16:00:00+00:00",
        "to": "2026-08-31T16:00:00+00:00",
        "team_ids": ["east"],
        "tiers": [],
        "types": ["new"],
    }
    assert listed[1]["tiers"] == ["KA"]
    assert service.client.get("/competitions").status_code == 401


def test_standings_of_an_unknown_competition_are_404(service: Service) -> None:
    answer = service.client.get("/competitions/nothing/standings", headers=auth("viewer"))

    assert answer.status_code == 404
    assert answer.json()["detail"]["error"] == "not_found"


# -- forecast categories ------------------------------------------------------------------
#
#   expected to close 25 May unless said: stage categories initial contact → pipeline,
#   proposal → best_case, signing → commit.
#   F1 1000 initial contact
#   F2 2000 proposal (2 Apr)
#   F3  500 signing (2 Apr)
#   F4  800 initial contact · override commit on 20 Apr
#   F5  700 initial contact, closes 30 Jun · won 12 May (700)
#   F6  300 initial contact · override best_case on 10 Apr, cleared on 25 Apr


def forecast_fixture() -> list[History]:
    may, june = date(2026, 5, 25), date(2026, 6, 30)
    return [
        History(at(4, 1), amount="1000.00", expected_close_on=may),
        History(at(4, 1), amount="2000.00", expected_close_on=may).advance("proposal", at(4, 2)),
        History(at(4, 1), amount="500.00", expected_close_on=may).advance(
            "signing", at(4, 2), ("requirements", "proposal", "negotiation")
        ),
        History(at(4, 1), amount="800.00", expected_close_on=may).update(
            at(4, 20), forecast_category="commit"
        ),
        History(at(4, 1), amount="700.00", expected_close_on=june).win(at(5, 12), "700.00"),
        History(at(4, 1), amount="300.00", expected_close_on=may)
        .update(at(4, 10), forecast_category="best_case")
        .update(at(4, 25), forecast_category=None),
    ]


def categories(service: Service, **params: Any) -> dict[str, dict[str, Any]]:
    return {m["month"]: m["categories"] for m in service.get("/forecast", **params)["months"]}


def _sums(*pairs: tuple[str, int]) -> dict[str, dict[str, Any]]:
    names = ("pipeline", "best_case", "commit", "closed")
    return {name: {"amount": a, "count": n} for name, (a, n) in zip(names, pairs, strict=True)}


def test_forecast_categories_take_the_override_and_the_month_s_wins(service: Service) -> None:
    service.feed(*forecast_fixture())

    months = categories(service)

    # May: pipeline F1 1000 + F6 300 (its override cleared); best_case F2 2000; commit F3 500
    # + F4 800 (override); closed F5 700, won in May. June: F5 is won, nothing open, no month.
    assert months["2026-05"] == _sums(("1300.00", 2), ("2000.00", 1), ("1300.00", 2), ("700.00", 1))
    assert list(months) == ["2026-05"]


def test_forecast_categories_as_of_take_the_override_as_it_stood_then(service: Service) -> None:
    service.feed(*forecast_fixture())

    months = categories(service, as_of=at(4, 22).isoformat())

    # 22 Apr: F4 commit (since 20 Apr), F6 best_case (cleared later); F5 still open in June.
    # May: pipeline F1 1000; best_case F2 2000 + F6 300; commit F3 500 + F4 800; no win.
    assert months["2026-05"] == _sums(("1000.00", 1), ("2300.00", 2), ("1300.00", 2), ("0.00", 0))
    assert months["2026-06"] == _sums(("700.00", 1), ("0.00", 0), ("0.00", 0), ("0.00", 0))


# -- deferrals ----------------------------------------------------------------------------
#
#   D1 deferred 1 Apr tender_cycle · reactivated 11 Apr (10 days) · won 1 May
#   D2 deferred 2 Apr tender_cycle · lost 22 Apr (20 days)
#   D3 deferred 3 Apr budget_cycle (note) · still deferred
#   D4 deferred 4 Apr with free text (before the reasons were coded) · reclaimed 10 Apr (6 days)
#   D5 deferred 5 Apr budget_cycle · reactivated 9 Apr (4 days) · lost 20 Apr
#   D6 deferred 25 Mar tender_cycle (before the window) · still deferred


def deferral_fixture() -> dict[str, History]:
    revisit = date(2026, 7, 1)
    return {
        "D1": History(at(3, 20))
        .defer(at(4, 1), revisit, "tender_cycle")
        .reactivate(at(4, 11))
        .win(at(5, 1)),
        "D2": History(at(3, 20)).defer(at(4, 2), revisit, "tender_cycle").lose(at(4, 22)),
        "D3": History(at(3, 20)).defer(at(4, 3), revisit, "budget_cycle", "预算冻结到七月"),
        "D4": History(at(3, 20))
        .defer(at(4, 4), revisit, "tender next year")
        .reclaim(at(4, 10), "deferred"),
        "D5": History(at(3, 20))
        .defer(at(4, 5), revisit, "budget_cycle")
        .reactivate(at(4, 9))
        .lose(at(4, 20)),
        "D6": History(at(3, 20)).defer(at(3, 25), revisit, "tender_cycle"),
    }


def deferrals(service: Service, **params: Any) -> dict[str, tuple[Any, ...]]:
    report = service.get("/deferrals", **{"from": "2026-04-01", "to": "2026-05-01", **params})
    return {
        r["reason"]: (
            r["deferred"],
            r["reactivated"],
            r["won_after_reactivation"],
            r["lost"],
            r["still_deferred"],
            r["ended_otherwise"],
            r["median_days_deferred"],
        )
        for r in report["reasons"]
    }


def test_deferrals_by_reason_follow_each_episode_to_its_end(service: Service) -> None:
    service.feed(*deferral_fixture().values())

    # (deferred, reactivated, won after, lost, still deferred, ended otherwise, median days)
    # tender_cycle: D1 reactivated then won (10 days), D2 lost from deferred (20) → median 15.
    # budget_cycle: D3 still deferred, D5 reactivated (4) then lost → median 4.
    # other: D4's free text, reclaimed (6). D6 began before the window.
    assert deferrals(service) == {
        "tender_cycle": (2, 1, 1, 1, 0, 0, 15.0),
        "budget_cycle": (2, 1, 0, 1, 1, 0, 4.0),
        "fiscal_year": (0, 0, 0, 0, 0, 0, None),
        "leadership_change": (0, 0, 0, 0, 0, 0, None),
        "other": (1, 0, 0, 0, 0, 1, 6.0),
    }


def test_deferrals_as_of_count_only_the_ends_until_then(service: Service) -> None:
    service.feed(*deferral_fixture().values())

    # 8 Apr noon: all five began, none ended yet.
    assert deferrals(service, as_of=at(4, 8, 12).isoformat()) == {
        "tender_cycle": (2, 0, 0, 0, 2, 0, None),
        "budget_cycle": (2, 0, 0, 0, 2, 0, None),
        "fiscal_year": (0, 0, 0, 0, 0, 0, None),
        "leadership_change": (0, 0, 0, 0, 0, 0, None),
        "other": (1, 0, 0, 0, 1, 0, None),
    }


def test_a_legacy_deferral_reads_as_other_with_its_text_as_the_note(service: Service) -> None:
    h = deferral_fixture()
    service.feed(*h.values())

    with service.store.engine.connect() as conn:
        d, o = LIVE.deferral, LIVE.opportunity
        legacy = conn.execute(
            sa.select(d.c.reason, d.c.note, d.c.end_kind).where(d.c.opportunity_id == h["D4"].id)
        ).one()
        current = conn.execute(
            sa.select(o.c.deferred_reason, o.c.deferred_note).where(o.c.id == h["D3"].id)
        ).one()
    assert tuple(legacy) == ("other", "tender next year", "reclaimed")
    assert tuple(current) == ("budget_cycle", "预算冻结到七月")


# -- a rebuild ----------------------------------------------------------------------------


def test_a_rebuild_answers_every_figure_as_the_consumer_did(service: Service) -> None:
    envelopes = envelopes_of(
        *attainment_fixture(),
        *standings_fixture(),
        *forecast_fixture(),
        *deferral_fixture().values(),
    )
    live_by_consumer(service, envelopes)
    live_by_consumer(service, envelopes[:20])  # delivered again: changes nothing

    def answers() -> list[Any]:
        return [
            service.get("/attainment", period="2026-Q2"),
            service.get("/competitions/spring/standings"),
            service.get("/forecast"),
            service.get("/deferrals", **{"from": "2026-04-01"}),
            *(views(service, name) for name in ("bi_target", "bi_competition_standing")),
        ]

    before, tables = answers(), snapshot(service.store.engine)

    code = rebuild.run(
        "http://opportunity", TOKEN, settings_of(service), transport=feed(envelopes), progress=False
    )

    assert code == 0
    assert answers() == before
    assert snapshot(service.store.engine) == tables
    assert len(tables["bi_target_change"]) == 3
    assert len(tables["bi_competition"]) == 2
    assert len(tables["bi_deferral"]) == 6


def views(service: Service, name: str) -> list[tuple[Any, ...]]:
    with service.store.engine.connect() as conn:
        found = conn.execute(sa.text(f"SELECT * FROM {name}"))  # noqa: S608 - a view's name
        return sorted(tuple(row) for row in found)


# -- the migration ------------------------------------------------------------------------


def test_revision_0007_adds_the_tables_and_columns_and_goes_back(empty: sa.Engine) -> None:
    alembic(empty, "upgrade", "0006")

    alembic(empty, "upgrade", "0007")

    assert migrate.current_revision(empty) == "0007"
    with empty.connect() as conn:
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names())
        opportunity = [c["name"] for c in inspector.get_columns("bi_opportunity")]
        version = [c["name"] for c in inspector.get_columns("bi_opportunity_version")]
    assert {"bi_target_change", "bi_competition", "bi_deferral"} <= tables
    # A migrated table has the columns of a rebuilt one, in the same order.
    assert opportunity == [c.name for c in LIVE.opportunity.columns]
    assert version == [c.name for c in LIVE.version.columns]
    alembic(empty, "downgrade", "0006")
    with empty.connect() as conn:
        inspector = sa.inspect(conn)
        assert "bi_deferral" not in inspector.get_table_names()
        columns = {c["name"] for c in inspector.get_columns("bi_opportunity")}
        assert conn.execute(sa.text("SELECT COUNT(*) FROM bi_funnel")).scalar_one() == 0
    assert "deferred_reason" not in columns
