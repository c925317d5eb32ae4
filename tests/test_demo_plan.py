"""The demo's sales plan: the quarter it sets targets for, and figures written out in full."""

from datetime import UTC, date, datetime

import pytest

from oppstream.plans import quarter_of, sprint_id, team_quarter_count, team_quarter_target
from oppstream.simulation import Deal


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 1), ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1))),
        (date(2026, 6, 30), ("2026-Q2", date(2026, 4, 1), date(2026, 7, 1))),
        (date(2026, 12, 31), ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1))),
    ],
)
def test_a_day_falls_in_its_quarter(day: date, expected: tuple[str, date, date]) -> None:
    assert quarter_of(day) == expected


def deal(n: int, team: str, amount: int) -> Deal:
    return Deal(f"d{n}", "new", {}, "rep-1", team, datetime(2026, 1, 1, tzinfo=UTC), amount, False)


def test_a_team_target_is_a_quarter_of_its_year_written_out_in_full() -> None:
    deals = [deal(n, "east", 1_234_567) for n in range(4)] + [deal(9, "west", 1)]

    assert str(team_quarter_target(deals, "east")) == "1230000"
    assert str(team_quarter_target(deals, "west")) == "10000"
    assert team_quarter_count(deals * 20, "east") == 22
    assert sprint_id("2026-Q4") == "sprint-2026-q4"
