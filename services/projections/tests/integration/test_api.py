"""The projections' HTTP API (SPEC §4.2, §4.4): who reads what, errors that name the field,
stale deals, the leaderboard, operations endpoints."""

from datetime import date, timedelta

import pytest

from services.projections.tests.conftest import Service
from services.projections.tests.history import History, day
from tests.support.principals import auth

REPORTS = ["/funnel", "/dwell", "/win-rates", "/forecast", "/stale", "/leaderboard"]


def reached(report: dict[str, object]) -> int:
    pipelines = report["pipelines"]
    assert isinstance(pipelines, list)
    return sum(p["stages"][0]["reached"] for p in pipelines)


@pytest.fixture
def teams(service: Service) -> Service:
    service.feed(
        History(day(0), owner_id="rep-1", team_id="east"),
        History(day(0), owner_id="rep-1", team_id="east"),
        History(day(0), owner_id="rep-2", team_id="east"),
        History(day(0), owner_id="rep-3", team_id="west"),
    )
    return service


@pytest.mark.parametrize("path", REPORTS)
def test_reports_need_a_bearer_token(service: Service, path: str) -> None:
    answer = service.client.get(path)

    assert answer.status_code == 401
    assert answer.json()["detail"]["error"] == "unauthenticated"
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    unknown = service.client.get(path, headers={"Authorization": "Bearer not-a-known-token-at-all"})
    assert unknown.status_code == 401


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("viewer", 4),
        ("admin", 4),
        ("service", 4),
        ("manager-east", 3),
        ("manager-west", 1),
        ("rep-1", 2),
        ("rep-3", 1),
    ],
)
def test_each_role_reads_what_it_may(teams: Service, who: str, expected: int) -> None:
    assert reached(teams.get("/funnel", who=who)) == expected


def test_a_rep_asking_for_someone_elses_opportunities_is_refused_naming_the_field(
    teams: Service,
) -> None:
    answer = teams.client.get("/funnel", params={"owner_id": "rep-2"}, headers=auth("rep-1"))

    assert answer.status_code == 403
    assert answer.json()["detail"] | {"message": "…"} == {
        "error": "forbidden",
        "message": "…",
        "rule": "role.owner",
        "field": "owner_id",
    }


def test_a_manager_asking_for_another_team_is_refused_naming_the_field(teams: Service) -> None:
    answer = teams.client.get("/dwell", params={"team_id": "west"}, headers=auth("manager-east"))

    assert answer.status_code == 403
    assert answer.json()["detail"]["field"] == "team_id"
    own = teams.get("/funnel", who="manager-east", team_id="east")
    assert reached(own) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "last tuesday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"from": "2026-03-05", "to": "2026-03-01"}, "to"),
        ({"type": "upsell"}, "type"),
        ({"tier": "MEGA"}, "tier"),
        ({"ownership": "STATE"}, "ownership"),
        ({"include_voided": "perhaps"}, "include_voided"),
    ],
)
def test_a_bad_filter_is_refused_naming_it(
    service: Service, params: dict[str, str], field: str
) -> None:
    answer = service.client.get("/funnel", params=params, headers=auth("viewer"))

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", field]


def test_a_bad_leaderboard_period_is_refused_naming_it(service: Service) -> None:
    answer = service.client.get(
        "/leaderboard", params={"period": "fortnight"}, headers=auth("viewer")
    )

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "period"]


def test_an_instant_with_an_unencoded_plus_offset_is_understood(service: Service) -> None:
    service.feed(History(day(0)))

    report = service.get("/funnel", as_of="2026-03-02T10:00:00 08:00")

    assert report["as_of"] == "2026-03-02T10:00:00+08:00"
    assert reached(report) == 1


def test_stale_ranks_open_opportunities_by_idle_days_with_their_reclaim_time(
    service: Service,
) -> None:
    quiet = History(day(0))  # KA: reclaimed 30 days after the last progress
    busy = History(day(0)).follow_up(day(20))
    smb = History(day(5), tier="SMB", ownership="PRIVATE")  # SMB: 14 days
    paused = History(day(0)).pause(day(1))
    won = History(day(0)).advance("signing", day(1), ()).win(day(2))
    service.feed(quiet, busy, smb, paused, won)

    report = service.get("/stale")  # now = d30

    assert [item["id"] for item in report["items"]] == [quiet.id, smb.id, busy.id]
    first = report["items"][0]
    assert first["idle_days"] == pytest.approx(30.0)
    assert first["reclaim_at"] == (day(30)).isoformat()
    assert first["reclaim_rule_id"] == "ka-default"
    assert first["reclaim_overdue"] is True
    assert report["items"][1]["reclaim_at"] == day(19).isoformat()
    assert report["items"][2]["reclaim_overdue"] is False
    assert report["total"] == 3
    earlier = service.get("/stale", as_of=day(10).isoformat())
    # At d10 `busy` had not followed up yet: ties are ordered by id.
    assert [i["id"] for i in earlier["items"]] == sorted([quiet.id, busy.id]) + [smb.id]
    assert service.get("/stale", limit=1, offset=1)["items"][0]["id"] == smb.id


def test_leaderboard_ranks_owners_and_teams_by_won_amount_per_period(service: Service) -> None:
    def won(owner: str, team: str, at_day: float, amount: str) -> History:
        return (
            History(day(0), owner_id=owner, team_id=team)
            .advance("signing", day(at_day - 1))
            .win(day(at_day), amount)
        )

    service.feed(
        won("rep-1", "east", 10, "500.00"),
        won("rep-1", "east", 12, "700.00"),
        won("rep-2", "east", 11, "2000.00"),
        won("rep-3", "west", 40, "900.00"),  # April
        History(day(0), owner_id="rep-3", team_id="west"),  # open: not on the board
    )

    report = service.get("/leaderboard", period="month")

    march, april = report["periods"]
    assert (march["period"], april["period"]) == ("2026-03", "2026-04")
    assert [
        (o["owner_id"], o["rank"], o["won_count"], o["won_amount"]) for o in march["owners"]
    ] == [
        ("rep-2", 1, 1, "2000.00"),
        ("rep-1", 2, 2, "1200.00"),
    ]
    assert [(t["team_id"], t["won_amount"], t["won_count"]) for t in march["teams"]] == [
        ("east", "3200.00", 3)
    ]
    assert april["owners"][0]["owner_id"] == "rep-3"
    year = service.get("/leaderboard", period="year", won_from="2026-04-01")
    assert [o["owner_id"] for o in year["periods"][0]["owners"]] == ["rep-3"]
    mine = service.get("/leaderboard", who="rep-1")
    assert {o["owner_id"] for p in mine["periods"] for o in p["owners"]} == {"rep-1"}


def test_amounts_in_another_currency_are_listed_apart(service: Service) -> None:
    service.feed(
        History(day(0), amount="100.00", expected_close_on=date(2026, 4, 1)),
        History(day(0), amount="50.00", currency="USD", expected_close_on=date(2026, 4, 1)),
    )

    funnel = service.get("/funnel")
    stage = funnel["pipelines"][0]["stages"][0]
    forecast = service.get("/forecast")

    assert (stage["open_amount"], stage["open_amount_other_currencies"]) == (
        "100.00",
        {"USD": "50.00"},
    )
    assert forecast["months"][0]["amount"] == "100.00"
    assert forecast["months"][0]["other_currencies"]["USD"]["amount"] == "50.00"


def test_healthz_readyz_and_metrics_answer_without_a_token(service: Service) -> None:
    service.feed(History(day(0)))
    service.get("/funnel")

    assert service.client.get("/healthz").json() == {"status": "ok"}
    ready = service.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    metrics = service.client.get("/metrics").text
    assert 'oppstream_projection_report_seconds_count{report="funnel"} 1.0' in metrics


def test_funnel_has_the_shape_the_spec_fixes(service: Service) -> None:
    service.feed(History(day(0)).advance("requirements", day(1) + timedelta(hours=1)))

    report = service.get("/funnel")

    assert set(report) >= {"as_of", "pipelines"}
    pipeline = report["pipelines"][0]
    assert set(pipeline) >= {"pipeline_id", "type", "stages", "won"}
    stage = pipeline["stages"][0]
    assert set(stage) >= {
        "stage",
        "reached",
        "conversion_rate",
        "conversion_days",
        "conversion_working_days",
        "open_visits",
        "open_amount",
        "standard",
        "below_standard",
    }
    assert set(stage["standard"]) == {"industry", "company"}
    assert isinstance(stage["conversion_rate"], float)
    assert isinstance(stage["conversion_days"], float)
    assert isinstance(stage["conversion_working_days"], float)


def test_the_dashboard_and_its_script_are_served_without_a_token_or_a_cdn(
    service: Service,
) -> None:
    page = service.client.get("/")
    script = service.client.get("/dashboard.js")

    assert page.status_code == script.status_code == 200
    assert '<script src="dashboard.js"></script>' in page.text
    assert '"initial_contact"' in page.text  # the rules' stages, in place of the placeholder
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/attainment" in script.text
    assert "//cdn" not in page.text + script.text
    assert "https://" not in page.text + script.text
