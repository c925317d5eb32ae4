"""The pure figures of targets, standings, deferrals and forecast categories (no I/O)."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from projections.domain.attainment import Credit, OpenOwned, figures, items, targets_then
from projections.domain.deferrals import Episode, by_reason, coded
from projections.domain.forecast import OpenAmount, Rate, categories
from projections.domain.plans import TargetChange
from projections.domain.standings import standings

T = datetime(2026, 4, 1, tzinfo=UTC)
CODES = ("tender_cycle", "other")


def change(version: int, value: str, days: float = 0) -> TargetChange:
    return TargetChange(
        "t-1", version, "TargetAdjusted", "2026-Q2", "rep", "rep-1", "won_amount",
        Decimal(value), None, None, "east", "manager-east", T + timedelta(days=days), f"e{version}",
    )  # fmt: skip


def test_a_target_stands_at_its_last_change() -> None:
    found = targets_then([change(2, "8000", 5), change(1, "5000")])

    assert found[("rep", "rep-1", "won_amount")].value == Decimal("8000")


def test_a_target_of_zero_has_no_attainment_but_a_gap() -> None:
    targets = {("rep", "rep-1", "won_count"): change(1, "0")}
    found = figures(
        [Credit("OpportunityWon", "rep-1", "east", "CNY", 2, Decimal("10"))],
        [],
        lambda p, s: Rate(Decimal(1), "measured"),  # noqa: ARG005
        "CNY",
        ["company"],
    )

    [item] = [i for i in items(targets, found, ["won_count"]) if i["scope"] == "rep"]

    assert (item["target"], item["actual"], item["attainment"], item["gap"]) == (0, 2, None, -2)


def test_amounts_in_another_currency_are_left_out_but_counted() -> None:
    found = figures(
        [Credit("OpportunityWon", "rep-1", None, "USD", 1, Decimal("99"))],
        [OpenOwned("new", "proposal", "rep-1", None, "USD", 1, Decimal("50"))],
        lambda p, s: Rate(Decimal("0.5"), "measured"),  # noqa: ARG005
        "CNY",
        ["company"],
    )

    rep = found[("rep", "rep-1")]
    assert (rep.won_amount, rep.won_count, rep.weighted_amount, rep.weighted_count) == (
        0, 1, 0, Decimal("0.5"),
    )  # fmt: skip
    assert ("team", "east") not in found


def test_equal_values_share_a_rank_and_the_next_skips() -> None:
    rows = standings(
        [("b", "east", Decimal(2)), ("a", "east", Decimal(2)), ("c", None, Decimal(5))],
        [("d", "west")],
    )

    assert [(r["rank"], r["owner_id"], r["team_id"]) for r in rows] == [
        (1, "c", None),
        (2, "a", "east"),
        (2, "b", "east"),
        (4, "d", "west"),
    ]


def test_a_free_text_deferral_reads_as_other_keeping_the_text() -> None:
    assert coded("tender_cycle", None, CODES) == ("tender_cycle", None)
    assert coded("招标明年", None, CODES) == ("other", "招标明年")
    assert coded("招标明年", "see mail", CODES) == ("other", "招标明年\nsee mail")


def test_an_end_after_as_of_has_not_happened() -> None:
    episode = Episode("tender_cycle", T, T + timedelta(days=10), "reactivated", "won")

    before = by_reason([episode], CODES, T + timedelta(days=5))["tender_cycle"]
    after = by_reason([episode], CODES, T + timedelta(days=20))["tender_cycle"]

    assert (before.still_deferred, before.reactivated, before.median_days_deferred) == (1, 0, None)
    assert (after.reactivated, after.won_after_reactivation, after.median_days_deferred) == (
        1, 1, pytest.approx(10.0),
    )  # fmt: skip
    assert by_reason([episode], CODES, T - timedelta(days=1))["tender_cycle"].deferred == 0


def test_an_override_wins_over_the_stage_category_and_wins_are_closed() -> None:
    may = date(2026, 5, 20)
    rows = [
        OpenAmount("new", "proposal", may, "CNY", 2, Decimal("300"), 0),
        OpenAmount("new", "proposal", may, "CNY", 1, Decimal("100"), 0, "commit"),
        OpenAmount("new", "proposal", may, "USD", 1, Decimal("999"), 0),
    ]

    found = categories(
        rows,
        lambda p, s: "best_case",  # noqa: ARG005
        [("2026-05", "CNY", 1, Decimal("70"))],
        "CNY",
    )["2026-05"]

    assert {k: (v.amount, v.count) for k, v in found.items()} == {
        "best_case": (Decimal("300"), 3),
        "commit": (Decimal("100"), 1),
        "closed": (Decimal("70"), 1),
    }
