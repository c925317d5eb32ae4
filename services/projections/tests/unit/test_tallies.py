"""Tallies (domain/tallies.py) and how a creation window splits into whole days
(adapters/tallied.py)."""

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from projections.adapters.tallied import span
from projections.domain.tallies import Changes, cents, epoch_micros, micros, slot_of

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


def test_a_window_of_midnights_is_whole_days_and_nothing_else() -> None:
    s = span(at(2026, 3, 1), at(2026, 4, 1), SHANGHAI)

    assert (s.whole, s.first_day, s.end_day, s.partial) == (
        True,
        date(2026, 3, 1),
        date(2026, 4, 1),
        (),
    )


def test_the_ends_of_a_window_inside_days_are_read_apart() -> None:
    s = span(at(2026, 3, 1, 9), at(2026, 3, 4, 18), SHANGHAI)

    assert (s.first_day, s.end_day) == (date(2026, 3, 2), date(2026, 3, 4))
    assert s.partial == (
        (at(2026, 3, 1, 9), at(2026, 3, 2)),
        (at(2026, 3, 4), at(2026, 3, 4, 18)),
    )


def test_a_window_inside_one_day_has_no_whole_day() -> None:
    s = span(at(2026, 3, 1, 9), at(2026, 3, 1, 18), SHANGHAI)

    assert not s.whole
    assert s.partial == ((at(2026, 3, 1, 9), at(2026, 3, 1, 18)),)


def test_an_open_window_is_every_day() -> None:
    assert span(None, None, SHANGHAI).partial == ()
    assert span(None, at(2026, 3, 1, 1), SHANGHAI).end_day == date(2026, 3, 1)


def test_measures_are_whole_microseconds_and_cents() -> None:
    assert micros(1.5e-6 + 2.0) == 2_000_002
    assert epoch_micros(datetime(1970, 1, 2, tzinfo=UTC)) == 86_400_000_000
    assert cents(Decimal("12.345")) == 1235
    assert cents(None) == 0


def test_a_window_ending_at_the_reports_instant_takes_its_last_day_whole() -> None:
    s = span(at(2025, 6, 1), at(2026, 3, 4, 18), SHANGHAI, at(2026, 3, 4, 18))

    assert (s.first_day, s.end_day, s.partial) == (date(2025, 6, 1), date(2026, 3, 5), ())
    assert s.excess == ((at(2026, 3, 4, 18), at(2026, 3, 5)),)


def test_a_change_falls_in_the_five_minute_slot_of_the_business_time_zone() -> None:
    assert slot_of(at(2026, 3, 2, 9, 34, 59), SHANGHAI) == at(2026, 3, 2, 9, 30)
    assert slot_of(at(2026, 3, 2, 9, 35), SHANGHAI) == at(2026, 3, 2, 9, 35)
    # 23:58 UTC is 07:58 the next day in Shanghai: that day's slot.
    late = slot_of(datetime(2026, 3, 1, 23, 58, tzinfo=UTC), SHANGHAI)
    assert (late.date(), late) == (date(2026, 3, 2), at(2026, 3, 2, 7, 55))


def test_a_fact_that_comes_and_goes_in_a_batch_leaves_no_row() -> None:
    changes = Changes()
    half_past, ten = slot_of(at(2026, 3, 2, 9, 32), SHANGHAI), at(2026, 3, 2, 10)
    fact = ("cohort", ("k",), (1, 100))
    changes.add(half_past, fact, 1)
    changes.move(half_past, [fact], [("cohort", ("j",), (1, 50))])
    changes.add(ten, ("cohort", ("j",), (1, 50)), 1)

    assert changes.rows() == {
        "cohort": (
            [("j", 2, 100)],
            [(date(2026, 3, 2), "j", 2, 100)],
            [(at(2026, 3, 2, 9), "j", 1, 50), (ten, "j", 1, 50)],
            [(at(2026, 3, 2, 9, 30), "j", 1, 50), (ten, "j", 1, 50)],
        ),
    }
