"""The pure metric functions (SPEC §5): reach, conversion, win rate, dwell, standards, forecast."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from contracts.rules import load_rulebook, parse_rulebook
from projections.domain.dwell import StageDwell
from projections.domain.forecast import OpenAmount, Rate, forecast
from projections.domain.funnel import ReachCount, conversion_rates, reach, win_rates
from projections.domain.periods import months_before, period_of
from projections.domain.standards import blended_industry_standard, falls_below, industry_standard


def test_a_won_opportunity_reached_every_stage_even_when_won_early() -> None:
    r = reach([ReachCount("new", "KA", "SOE", 1, "won", 1)], 5)

    assert r.reached == [1, 1, 1, 1, 1]
    assert conversion_rates(r) == [1.0] * 5


def test_the_last_stage_converts_to_won() -> None:
    r = reach(
        [
            ReachCount("new", "KA", "SOE", 4, "won", 2),
            ReachCount("new", "KA", "SOE", 4, "lost", 2),
            ReachCount("new", "KA", "SOE", 0, "open", 6),
        ],
        5,
    )

    assert r.reached == [10, 4, 4, 4, 4]
    assert conversion_rates(r) == [0.4, 1.0, 1.0, 1.0, 0.5]
    assert win_rates(r) == [0.5] * 5


def test_nothing_reached_gives_no_rate() -> None:
    assert conversion_rates(reach([], 3)) == [None, None, None]


def test_voided_ones_are_counted_apart_unless_included() -> None:
    rows = [
        ReachCount("new", "KA", "SOE", 2, "voided", 3),
        ReachCount("new", "KA", "SOE", 0, "open", 1),
    ]

    assert (reach(rows, 3).reached, reach(rows, 3).voided) == ([1, 0, 0], 3)
    assert reach(rows, 3, include_voided=True).reached == [4, 3, 3]


def test_conversion_days_and_open_age_are_means_in_days() -> None:
    d = StageDwell()
    d.add_completed("advanced", 2, 3 * 86400, 86400)
    d.add_completed("lost", 1, 86400, 0)
    d.add_open(2, 10 * 86400)

    assert (d.conversion_days, d.open_mean_age_days, d.completed_by_exit) == (
        pytest.approx(4 / 3),
        5.0,
        {"advanced": 2, "lost": 1},
    )
    assert StageDwell().conversion_days is None


def test_conversion_working_days_are_the_mean_over_the_visits_counted_in_working_days() -> None:
    d = StageDwell()
    d.add_completed("advanced", 3, 9 * 86400, 0)
    d.add_working_days(2, 5.0)  # the third visit's working days are not known

    assert (d.conversion_days, d.conversion_working_days) == (3.0, 2.5)
    assert StageDwell().conversion_working_days is None


RULES = parse_rulebook(
    (load_rulebook().model_dump_json()).replace(
        '"industry":[',
        '"industry":[{"match":{"stage":"proposal"},"win_rate":0.33},'
        '{"match":{"tier":"KA","ownership":"SOE","stage":"proposal"},"win_rate":0.45},',
        1,
    )
)


def test_the_most_specific_industry_standard_wins() -> None:
    assert industry_standard(RULES, "win_rate", "new", "proposal", ("KA", "SOE")) == 0.45
    assert industry_standard(RULES, "win_rate", "new", "proposal", ("KA", "PRIVATE")) == 0.4
    assert industry_standard(RULES, "win_rate", "new", "proposal", (None, None)) == 0.33
    assert industry_standard(RULES, "conversion_days", "new", "proposal", (None, None)) is None


def test_a_mixed_cohort_blends_segment_standards_by_population() -> None:
    value = blended_industry_standard(
        RULES,
        "conversion_rate",
        "new",
        "initial_contact",
        {("KA", "SOE"): 3, ("SMB", "OTHER"): 1},
        (None, None),
    )
    assert value == pytest.approx((0.6 * 3 + 0.5) / 4)
    empty = blended_industry_standard(
        RULES, "conversion_rate", "new", "initial_contact", {}, ("SMB", None)
    )
    assert empty == 0.5


def test_falling_below_means_worse_and_for_days_more() -> None:
    assert falls_below(0.4, 0.5) is True
    assert falls_below(0.5, 0.5) is False
    assert falls_below(12.0, 10.0, lower_is_better=True) is True
    assert falls_below(None, 0.5) is None


def test_forecast_groups_by_expected_close_month_with_unscheduled_last() -> None:
    rows = [
        OpenAmount("new", "proposal", None, "CNY", 1, Decimal("100.00"), 0),
        OpenAmount("new", "proposal", date(2026, 5, 3), "CNY", 2, Decimal("300.00"), 0),
        OpenAmount("new", "signing", date(2026, 4, 30), "CNY", 1, Decimal("1000.00"), 0),
        OpenAmount("new", "signing", date(2026, 4, 1), "USD", 1, Decimal("10.00"), 0),
    ]
    rates = {
        "proposal": Rate(Decimal("0.5"), "measured"),
        "signing": Rate(Decimal("0.8"), "probability"),
    }

    months = forecast(rows, lambda _, stage: rates[stage], "CNY")

    assert [(m.month, m.amount, m.weighted) for m in months] == [
        ("2026-04", Decimal("1000.00"), Decimal("800.000")),
        ("2026-05", Decimal("300.00"), Decimal("150.000")),
        ("unscheduled", Decimal("100.00"), Decimal("50.000")),
    ]
    assert months[0].other_currencies == {
        "USD": {"amount": Decimal("10.00"), "weighted": Decimal("8.000")}
    }


def test_months_before_clamps_the_day_to_the_month() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    assert months_before(datetime(2026, 3, 31, 10, tzinfo=zone), 1) == datetime(
        2026, 2, 28, 10, tzinfo=zone
    )
    assert months_before(datetime(2026, 3, 15, tzinfo=zone), 12) == datetime(
        2025, 3, 15, tzinfo=zone
    )


def test_periods_are_named_as_people_read_them() -> None:
    at = datetime(2026, 11, 28, 9, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert [period_of(at, p) for p in ("day", "week", "month", "quarter", "year")] == [
        "2026-11-28",
        "2026-W48",
        "2026-11",
        "2026-Q4",
        "2026",
    ]
