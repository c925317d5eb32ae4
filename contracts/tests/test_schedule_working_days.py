"""The reminder schedule under rules that count working days of mainland China (SPEC §8.4),
over 国庆 2026 (1–7 Oct off, the 调休 Sunday 20 Sep and Saturday 10 Oct at work) and 春节 2027
(5–10 Feb off)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts.opportunity import Status
from contracts.rules import Reminders, Rulebook, load_rulebook
from contracts.schedule import Facts, Timer, TimerKind, due, next_reminder_at, reclaim_at, timers

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


@pytest.fixture(scope="module")
def rules() -> Rulebook:
    """The default rules with SMB counting working days: 3, 5, 8 and 10."""
    default = load_rulebook()
    ladders = [
        {
            "id": "smb-working-days",
            "match": {"tier": "SMB"},
            "follow_up_after": "3wd",
            "warn_after": "5wd",
            "escalate_after": "8wd",
            "reclaim_after": "10wd",
        },
        {"id": "ka-default", "match": {"tier": "KA"}, "follow_up_after": "P7D"},
    ]
    reminders = Reminders.model_validate({"rules": ladders})
    return default.model_copy(update={"reminders": reminders})


def _facts(last_progress_at: datetime, tier: str = "SMB") -> Facts:
    return Facts(
        type="new",
        tier=tier,
        ownership="PRIVATE",
        stage="proposal",
        status=Status.OPEN,
        last_progress_at=last_progress_at,
    )


def _schedule(found: list[Timer]) -> list[tuple[TimerKind, datetime]]:
    return [(t.kind, t.due_at) for t in found]


def test_the_ladder_steps_over_national_day_and_counts_the_working_saturday(
    rules: Rulebook,
) -> None:
    # Wednesday 30 Sep 10:30; then 8, 9, 10 (Saturday, 调休), 12, 13 … 20 October.
    found = timers(rules, _facts(at(2026, 9, 30, 10, 30)), SHANGHAI)
    assert _schedule(found) == [
        (TimerKind.FOLLOW_UP, at(2026, 10, 10, 10, 30)),
        (TimerKind.STALE_WARNING, at(2026, 10, 13, 10, 30)),
        (TimerKind.ESCALATION, at(2026, 10, 16, 10, 30)),
        (TimerKind.RECLAIM_DUE, at(2026, 10, 20, 10, 30)),
    ]


def test_the_working_sunday_before_national_day_counts(rules: Rulebook) -> None:
    # Thursday 17 Sep: Friday 18, Sunday 20 (调休), Monday 21 — Saturday 19 is off.
    [follow_up, *_] = timers(rules, _facts(at(2026, 9, 17, 16, 0)), SHANGHAI)
    assert follow_up.due_at == at(2026, 9, 21, 16, 0)


def test_progress_on_a_holiday_counts_from_the_next_working_day(rules: Rulebook) -> None:
    # Saturday 3 Oct, in the holiday: 8, 9 and 10 October.
    [follow_up, *_] = timers(rules, _facts(at(2026, 10, 3, 9, 15)), SHANGHAI)
    assert follow_up.due_at == at(2026, 10, 10, 9, 15)


def test_the_ladder_steps_over_the_spring_festival_2027(rules: Rulebook) -> None:
    # Thursday 4 Feb, the last working day before 除夕; back at work on Thursday 11 Feb.
    found = timers(rules, _facts(at(2027, 2, 4, 15, 0)), SHANGHAI)
    assert _schedule(found) == [
        (TimerKind.FOLLOW_UP, at(2027, 2, 15, 15, 0)),
        (TimerKind.STALE_WARNING, at(2027, 2, 17, 15, 0)),
        (TimerKind.ESCALATION, at(2027, 2, 22, 15, 0)),
        (TimerKind.RECLAIM_DUE, at(2027, 2, 24, 15, 0)),
    ]
    assert reclaim_at(found) == at(2027, 2, 24, 15, 0)


def test_working_days_are_counted_in_the_business_time_zone(rules: Rulebook) -> None:
    # 20:00 UTC on Sunday 27 Sep is Monday 28 Sep, 04:00, in Shanghai: 29 and 30 Sep, then 8
    # Oct (counted in UTC, from the Sunday, it would have been 30 Sep, 20:00 UTC).
    [follow_up, *_] = timers(rules, _facts(datetime(2026, 9, 27, 20, 0, tzinfo=UTC)), SHANGHAI)
    assert follow_up.due_at == at(2026, 10, 8, 4, 0)


def test_nothing_falls_due_over_the_holiday_that_a_calendar_rule_would_fire(
    rules: Rulebook,
) -> None:
    found = timers(rules, _facts(at(2026, 9, 30, 10, 30)), SHANGHAI)
    assert due(found, at(2026, 10, 10, 10, 29)) == []
    assert [t.kind for t in due(found, at(2026, 10, 10, 10, 30))] == [TimerKind.FOLLOW_UP]
    assert next_reminder_at(found, at(2026, 10, 10, 10, 30)) == at(2026, 10, 13, 10, 30)
    assert [t.kind for t in due(found, at(2026, 10, 21))] == [TimerKind.RECLAIM_DUE]


def test_the_explanation_shows_the_span_as_the_rules_file_writes_it(rules: Rulebook) -> None:
    found = timers(rules, _facts(at(2026, 9, 30, 10, 30)), SHANGHAI)
    assert [t.detail[field] for t, field in zip(found, _LADDER_FIELDS, strict=True)] == [
        "3wd",
        "5wd",
        "8wd",
        "10wd",
    ]
    [calendar] = timers(rules, _facts(at(2026, 9, 30, 10, 30), tier="KA"), SHANGHAI)
    assert calendar.detail["follow_up_after"] == "P7D"
    assert calendar.due_at == at(2026, 9, 30, 10, 30) + timedelta(days=7)


_LADDER_FIELDS = ("follow_up_after", "warn_after", "escalate_after", "reclaim_after")
