"""SPEC §5 figures of hand-computed cohorts, through the HTTP API, on SQLite and PostgreSQL."""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from projections.adapters.schema import LIVE
from services.projections.tests.cohort import cohort
from services.projections.tests.conftest import Clock, Service
from services.projections.tests.history import History, day

STAGES = ["initial_contact", "requirements", "proposal", "negotiation", "signing"]


def shanghai(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=ZoneInfo("Asia/Shanghai"))  # type: ignore[misc]


def stages_of(report: dict[str, Any], pipeline: str = "new") -> dict[str, dict[str, Any]]:
    found = next(p for p in report["pipelines"] if p["pipeline_id"] == pipeline)
    return {s["stage"]: s for s in found["stages"]}


def pipeline_of(report: dict[str, Any], pipeline: str = "new") -> dict[str, Any]:
    return next(p for p in report["pipelines"] if p["pipeline_id"] == pipeline)


def test_seed_example_100_reach_a_stage_and_20_the_next_is_a_rate_of_0_2(service: Service) -> None:
    histories = [History(day(i % 20)) for i in range(100)]
    for h in histories[:20]:
        h.advance("requirements", day(25))
    service.feed(*histories)

    stages = stages_of(service.get("/funnel"))

    assert stages["initial_contact"]["reached"] == 100
    assert stages["requirements"]["reached"] == 20
    assert stages["initial_contact"]["conversion_rate"] == pytest.approx(0.2)


def test_funnel_counts_skipped_stages_as_passed_and_leaves_voided_out(service: Service) -> None:
    service.feed(*cohort().values())

    report = service.get("/funnel")
    stages = stages_of(report)

    # Voided D is left out: A B C E F G. Reached: everyone the first stage; requirements:
    # A (won), B (skipped it, reached negotiation), E; proposal: A B E; negotiation: A B;
    # signing: A.
    assert [stages[s]["reached"] for s in STAGES] == [6, 3, 3, 2, 1]
    rates = [stages[s]["conversion_rate"] for s in STAGES]
    assert rates == pytest.approx([3 / 6, 3 / 3, 2 / 3, 1 / 2, 1 / 1])
    new = pipeline_of(report)
    assert (new["won"], new["lost"], new["voided"], new["opportunities"]) == (1, 2, 1, 6)


def test_voided_opportunities_count_when_asked_to(service: Service) -> None:
    service.feed(*cohort().values())

    stages = stages_of(service.get("/funnel", include_voided="true"))

    # D entered requirements before it was voided.
    assert [stages[s]["reached"] for s in STAGES] == [7, 4, 3, 2, 1]


def test_conversion_days_leave_paused_time_out_and_a_revert_starts_a_new_visit(
    service: Service,
) -> None:
    service.feed(*cohort().values())

    stages = stages_of(service.get("/dwell"))

    # initial_contact: A 2, B 4, C 5-1=4 minus 2 paused = 2, E 2 → 10 / 4
    # requirements: A 3, E 3 → 3 (D's visit is voided)
    # proposal: A 5, B 4-…: B's first visit d4→d10 is 6 days minus 2 paused = 4, its second
    # (after the revert) d11→d14 = 3 → (5 + 4 + 3) / 3 = 4
    # negotiation: A 2, B 1 (reverted), B 6 (lost) → 3; signing: A 3
    expected = {
        "initial_contact": (4, 2.5),
        "requirements": (2, 3.0),
        "proposal": (3, 4.0),
        "negotiation": (3, 3.0),
        "signing": (1, 3.0),
    }
    for stage, (visits, days) in expected.items():
        assert stages[stage]["completed_visits"] == visits, stage
        assert stages[stage]["conversion_days"] == pytest.approx(days), stage
    assert stages["proposal"]["paused_days"] == pytest.approx(2.0)
    assert stages["negotiation"]["completed_by_exit"] == {"lost": 1, "reverted": 1, "advanced": 1}
    funnel = stages_of(service.get("/funnel"))
    assert funnel["initial_contact"]["conversion_days"] == pytest.approx(2.5)


def test_conversion_working_days_count_only_working_time_and_leave_paused_time_out(
    service: Service,
) -> None:
    service.feed(*cohort().values())

    stages = stages_of(service.get("/dwell"))

    # d0 is Monday 2 March 2026 at 09:00 in Shanghai (no holiday that month): d5-d6, d12-d13
    # and d19-d20 are weekends. A day's share starts at midnight, so 09:00 → 09:00 from one
    # working day to the next is 1 working day.
    # initial_contact: A d0→d2 2, B d0→d4 4, C d1→d5 3⅝ less its pause d3→d5 1⅝ = 2, E 2.
    # requirements: A Wed d2 → Sat d5 2⅝, E Fri d4 → Mon d7 1 → 1.8125.
    # proposal: A Sat d5 → Thu d10 3⅜; B d4→d10 4 less the pause Sun d6 → Tue d8 1⅜ = 2⅝;
    # B again Fri d11 → Mon d14 1 → 7 / 3. signing: A Sat d12 → Tue d15 1⅜.
    expected = {
        "initial_contact": 2.5,
        "requirements": 1.8125,
        "proposal": 7 / 3,
        "signing": 1.375,
    }
    for stage, working_days in expected.items():
        assert stages[stage]["conversion_working_days"] == pytest.approx(working_days), stage
    assert stages["requirements"]["conversion_days"] == pytest.approx(3.0)
    funnel = stages_of(service.get("/funnel"))
    assert funnel["requirements"]["conversion_working_days"] == pytest.approx(1.8125)
    assert funnel["negotiation"]["conversion_working_days"] == pytest.approx(7.25 / 3)


def test_conversion_working_days_leave_out_the_holiday_a_pause_spans(
    service: Service, clock: Clock
) -> None:
    clock.now = shanghai(2026, 11, 1)
    # Mon 28 Sep 2026 09:00 → Mon 12 Oct 09:00 over 国庆: 6 working days (the 调休 Saturday 10
    # Oct included), of which the pause from noon 30 Sep to noon 9 Oct holds 2.
    service.feed(
        History(shanghai(2026, 9, 28, 9))
        .pause(shanghai(2026, 9, 30, 12))
        .resume(shanghai(2026, 10, 9, 12))
        .advance("requirements", shanghai(2026, 10, 12, 9))
    )

    for report in (service.get("/dwell"), service.get("/funnel")):
        stage = stages_of(report)["initial_contact"]
        assert (stage["conversion_days"], stage["conversion_working_days"]) == (5.0, 4.0)
        assert stages_of(report)["requirements"]["conversion_working_days"] is None


def test_visits_whose_working_days_are_not_known_are_left_out_of_their_mean(
    service: Service,
) -> None:
    # As visits completed before the read model counted working days, not rebuilt since (so
    # migrated since without tallies: the reports read the tables).
    known, unknown = History(day(0)), History(day(0))
    known.advance("requirements", day(2))
    unknown.advance("requirements", day(4))
    service.feed(known, unknown)
    visit = LIVE.visit
    with service.store.engine.begin() as conn:
        conn.execute(
            sa.update(visit).where(visit.c.opportunity_id == unknown.id).values(working_days=None)
        )
        conn.execute(sa.insert(LIVE.tallies_missing).values(reason="migrated", since=day(30)))

    stage = stages_of(service.get("/dwell"))["initial_contact"]

    assert (stage["completed_visits"], stage["conversion_days"]) == (2, 3.0)
    assert stage["conversion_working_days"] == 2.0


def test_open_visits_are_reported_apart_with_their_mean_age(service: Service) -> None:
    service.feed(*cohort().values())

    stages = stages_of(service.get("/funnel"))  # now = d30

    # initial_contact: F entered d2, paused since d9 → 7 days; G entered d3, deferred (time
    # deferred counts) → 27 days. proposal: E since d7 → 23 days.
    assert stages["initial_contact"]["open_visits"]["count"] == 2
    assert stages["initial_contact"]["open_visits"]["mean_age_days"] == pytest.approx(17.0)
    assert stages["proposal"]["open_visits"] == {"count": 1, "mean_age_days": pytest.approx(23.0)}
    assert stages["negotiation"]["open_visits"] == {"count": 0, "mean_age_days": None}
    assert stages["initial_contact"]["open_amount"] == "500.00"
    assert stages["proposal"]["open_amount"] == "500.00"
    assert stages["signing"]["conversion_days"] == pytest.approx(3.0)


def test_win_rate_at_a_stage_counts_closed_opportunities_that_reached_it(
    service: Service,
) -> None:
    service.feed(*cohort().values())

    report = service.get("/win-rates")
    stages = stages_of(report)

    # won: A. lost: B (reached negotiation), C (initial contact only).
    assert [stages[s]["win_rate"] for s in STAGES] == pytest.approx(
        [1 / 3, 1 / 2, 1 / 2, 1 / 2, 1.0]
    )
    assert [stages[s]["closed"] for s in STAGES] == [3, 2, 2, 2, 1]
    assert pipeline_of(report)["win_rate"] == pytest.approx(1 / 3)


def test_forecast_weights_each_amount_by_the_win_rate_at_its_current_stage(
    service: Service,
) -> None:
    service.feed(*cohort().values())

    report = service.get("/forecast")

    # E 500 at proposal (0.5) closes 2026-05; F 300 at initial contact (1/3) closes 2026-04;
    # G 200 at initial contact, no close date. 2026-03 has only A's win (its `closed`).
    months = {m["month"]: m for m in report["months"]}
    assert list(months) == ["2026-03", "2026-04", "2026-05", "unscheduled"]
    assert (months["2026-03"]["opportunities"], months["2026-03"]["amount"]) == (0, "0.00")
    assert (months["2026-04"]["amount"], months["2026-04"]["weighted"]) == ("300.00", "100.00")
    assert (months["2026-05"]["amount"], months["2026-05"]["weighted"]) == ("500.00", "250.00")
    assert months["unscheduled"]["weighted"] == "66.67"
    assert report["total"] == {"amount": "1000.00", "weighted": "416.67"}
    assert {(r["stage"], r["basis"]) for r in report["rates"]} == {
        ("initial_contact", "measured"),
        ("proposal", "measured"),
    }


def test_forecast_falls_back_to_the_stage_probability_without_closed_history(
    service: Service,
) -> None:
    service.feed(History(day(0), amount="1000.00").advance("requirements", day(1)))

    report = service.get("/forecast")

    assert report["months"][0]["weighted"] == "200.00"  # requirements: probability 0.2
    assert report["rates"] == [
        {"pipeline_id": "new", "stage": "requirements", "win_rate": 0.2, "basis": "probability"}
    ]


def test_standards_flag_a_stage_below_the_industry_value(service: Service) -> None:
    service.feed(*cohort().values())

    stages = stages_of(service.get("/funnel", tier="KA"))

    # KA industry conversion rates: 0.6 0.55 0.5 0.6 0.8; ours: 0.5 1 0.667 0.5 1.
    assert [stages[s]["standard"]["industry"] for s in STAGES] == [0.6, 0.55, 0.5, 0.6, 0.8]
    assert [stages[s]["below_standard"] for s in STAGES] == [True, False, False, True, False]
    # KA conversion days: 10 14 21 14 7; ours are all shorter, none below.
    assert [stages[s]["below_standard_days"] for s in STAGES] == [False] * 5
    # The whole cohort lies in the trailing 12 months: the company's value is ours.
    assert stages["proposal"]["standard"]["company"] == pytest.approx(2 / 3)
    assert stages["proposal"]["below_company"] is False
    win = stages_of(service.get("/win-rates", tier="KA"))
    # KA win rate at initial contact 0.25, ours 1/3; at signing 0.75, ours 1.
    assert win["initial_contact"]["standard"]["industry"] == 0.25
    assert win["initial_contact"]["below_standard"] is False


def test_industry_standard_of_a_mixed_cohort_weighs_each_segment_by_its_population(
    service: Service,
) -> None:
    ka = [History(day(0), tier="KA") for _ in range(3)]
    smb = [History(day(0), tier="SMB", ownership="PRIVATE") for _ in range(1)]
    service.feed(*ka, *smb)

    stages = stages_of(service.get("/funnel"))

    # initial contact: KA 0.6 × 3 + SMB 0.5 × 1 over 4 reached
    assert stages["initial_contact"]["standard"]["industry"] == pytest.approx((0.6 * 3 + 0.5) / 4)
    stages = stages_of(service.get("/funnel", tier="SMB"))
    assert stages["initial_contact"]["reached"] == 1
    assert stages["initial_contact"]["standard"]["industry"] == pytest.approx(0.5)


def test_company_standard_covers_the_trailing_twelve_months_only(service: Service) -> None:
    old = [History(day(-400)).advance("requirements", day(-399)) for _ in range(2)]
    recent = [History(day(0)) for _ in range(2)] + [History(day(0)).advance("requirements", day(1))]
    service.feed(*old, *recent)

    stages = stages_of(service.get("/funnel"))

    assert stages["initial_contact"]["conversion_rate"] == pytest.approx(3 / 5)
    assert stages["initial_contact"]["standard"]["company"] == pytest.approx(1 / 3)


def test_filters_select_the_cohort(service: Service) -> None:
    service.feed(
        History(day(0), tier="KA", owner_id="rep-1", team_id="east"),
        History(day(1), tier="SMB", ownership="PRIVATE", owner_id="rep-2", team_id="east"),
        History(day(2), tier="KA", ownership="FOREIGN", owner_id="rep-3", team_id="west"),
        History(day(40), type="resale", owner_id="rep-3", team_id="west"),
    )

    def reached(**params: str) -> int:
        report = service.get("/funnel", **params)
        return sum(p["stages"][0]["reached"] for p in report["pipelines"])

    assert reached() == 4
    assert reached(type="resale") == 1
    assert reached(tier="SMB") == 1
    assert reached(ownership="FOREIGN") == 1
    assert reached(owner_id="rep-3") == 2
    assert reached(team_id="east") == 2
    # 2026-03-03 is d1 (00:00 in Asia/Shanghai is 16:00 UTC the day before; d1 is 09:00).
    assert reached(**{"from": "2026-03-03"}) == 3
    assert reached(**{"from": "2026-03-03", "to": "2026-03-04"}) == 1
    assert reached(to="2026-03-03") == 1
    assert reached(**{"from": (day(1) + timedelta(seconds=1)).isoformat()}) == 2


def test_as_of_before_any_event_shows_an_empty_funnel(service: Service) -> None:
    service.feed(*cohort().values())

    stages = stages_of(service.get("/funnel", as_of=day(-1).isoformat()))

    assert [stages[s]["reached"] for s in STAGES] == [0] * 5
    assert stages["initial_contact"]["conversion_rate"] is None


def test_as_of_between_events_shows_history_as_it_was_then(service: Service) -> None:
    service.feed(*cohort().values())
    as_of = day(11.5).isoformat()

    funnel = service.get("/funnel", as_of=as_of)
    stages = stages_of(funnel)

    # At d11.5: A in negotiation (since d10); B back in proposal (since d11) having reached
    # negotiation; C lost; D voided; E in proposal; F paused at d9; G deferred at d5.
    assert funnel["as_of"] == day(11.5).isoformat()
    assert [stages[s]["reached"] for s in STAGES] == [6, 3, 3, 2, 0]
    assert [stages[s]["conversion_rate"] for s in STAGES] == pytest.approx(
        [0.5, 1.0, 2 / 3, 0.0, None]
    )
    assert pipeline_of(funnel)["won"] == 0
    dwell = stages_of(service.get("/dwell", as_of=as_of))
    # proposal completed: A 5, B 4 (its second visit is open); negotiation: B's reverted 1.
    assert dwell["proposal"]["conversion_days"] == pytest.approx(4.5)
    assert dwell["negotiation"]["conversion_days"] == pytest.approx(1.0)
    assert dwell["signing"]["conversion_days"] is None
    # open: F 9.5 - 2.5 paused = 7, G 8.5 → 7.75; proposal: E 4.5, B 0.5 → 2.5; A 1.5
    assert dwell["initial_contact"]["open_visits"]["mean_age_days"] == pytest.approx(7.75)
    assert dwell["proposal"]["open_visits"] == {"count": 2, "mean_age_days": pytest.approx(2.5)}
    assert dwell["negotiation"]["open_visits"] == {"count": 1, "mean_age_days": pytest.approx(1.5)}
    win = stages_of(service.get("/win-rates", as_of=as_of))
    assert win["initial_contact"]["win_rate"] == 0.0  # only C had closed (lost)
    assert win["requirements"]["win_rate"] is None


def test_as_of_after_every_event_equals_the_current_figures(service: Service) -> None:
    service.feed(*cohort().values())

    later = service.get("/funnel", as_of=day(30).isoformat())
    now = service.get("/funnel")  # the clock says d30

    assert later == now


def test_a_date_as_of_means_midnight_in_the_business_time_zone(service: Service) -> None:
    service.feed(History(day(0)), History(day(1)))  # d1 = 2026-03-03 09:00 +08:00

    stages = stages_of(service.get("/funnel", as_of="2026-03-03"))

    assert stages["initial_contact"]["reached"] == 1


def test_an_opportunity_voided_later_counts_as_of_before_its_void(service: Service) -> None:
    histories = cohort()
    service.feed(*histories.values())

    # D entered requirements at d3 and was voided at d4.
    before = stages_of(service.get("/funnel", as_of=day(3.5).isoformat()))
    after = stages_of(service.get("/funnel", as_of=day(4.5).isoformat()))
    dwell_before = stages_of(service.get("/dwell", as_of=day(3.5).isoformat()))

    # At d3.5: A and D had reached it; B (skips it) and E got there at d4.
    assert before["requirements"]["reached"] == 2
    # At d4.5: D is voided; A, B, E.
    assert after["requirements"]["reached"] == 3
    # D's initial contact visit (d1 → d3, 2 days) counts while D was not voided.
    assert dwell_before["initial_contact"]["completed_visits"] == 2  # A (d0-d2), D (d1-d3)
    assert dwell_before["initial_contact"]["conversion_days"] == pytest.approx(2.0)


def test_with_a_creation_window_the_company_standard_covers_the_months_before_it(
    service: Service,
) -> None:
    # Last year's deals (KA SOE, June 2025): 2 created, 1 advanced to requirements: 1/2 = 0.5
    # at initial contact, 0/1 = 0 at requirements. This year's (March 2026, cohort.py):
    # reached 6 → 3 → 3: 0.5 and 1.
    last_year = [History(shanghai(2025, 6, 2, 9)) for _ in range(2)]
    last_year[0].advance("requirements", shanghai(2025, 6, 5, 9))
    service.feed(*cohort().values(), *last_year)

    for path in ("/funnel", "/dwell", "/win-rates"):
        report = service.get(path, **{"from": "2026-03-01", "to": "2026-04-01"})
        # The 12 months before 1 March 2026, not the 12 before as_of (which hold the cohort).
        assert report["standard_windows"] == {
            "cohort": {"from": "2026-03-01T00:00:00+08:00", "to": "2026-04-01T00:00:00+08:00"},
            "company": {"from": "2025-03-01T00:00:00+08:00", "to": "2026-03-01T00:00:00+08:00"},
        }, path
    stages = stages_of(service.get("/funnel", **{"from": "2026-03-01", "to": "2026-04-01"}))
    assert stages["initial_contact"]["standard"]["company"] == pytest.approx(0.5)
    assert stages["requirements"]["standard"]["company"] == 0.0
    # Without a window: the 12 months before as_of (1 April 2026 09:00) hold both: reached
    # 8 → 4 → 3, requirements 3/4.
    report = service.get("/funnel")
    assert report["standard_windows"]["company"] == {
        "from": "2025-04-01T09:00:00+08:00",
        "to": "2026-04-01T09:00:00+08:00",
    }
    assert stages_of(report)["requirements"]["standard"]["company"] == pytest.approx(0.75)
