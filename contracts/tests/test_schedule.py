"""The reminder schedule implied by the default rules: ladders, pauses, revisits, renewals."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts.opportunity import Status
from contracts.rules import Rulebook, load_rulebook
from contracts.schedule import (
    Facts,
    Timer,
    TimerKind,
    due,
    next_reminder_at,
    reclaim_at,
    start_of_day,
    timers,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
PROGRESS = datetime(2026, 11, 2, 10, 30, tzinfo=SHANGHAI)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def rules() -> Rulebook:
    return load_rulebook()


def _facts(
    tier: str = "KA",
    status: Status = Status.OPEN,
    paused_until: date | None = None,
    revisit_on: date | None = None,
    contract_end_on: date | None = None,
) -> Facts:
    return Facts(
        type="new",
        tier=tier,
        ownership="PRIVATE",
        stage="proposal",
        status=status,
        last_progress_at=PROGRESS,
        paused_until=paused_until,
        revisit_on=revisit_on,
        contract_end_on=contract_end_on,
    )


def _schedule(found: list[Timer]) -> list[tuple[TimerKind, datetime]]:
    return [(t.kind, t.due_at) for t in found]


def test_open_ka_opportunity_climbs_the_ladder_at_7_14_21_30_days(rules: Rulebook) -> None:
    found = timers(rules, _facts("KA"), SHANGHAI)
    assert _schedule(found) == [
        (TimerKind.FOLLOW_UP, PROGRESS + 7 * DAY),
        (TimerKind.STALE_WARNING, PROGRESS + 14 * DAY),
        (TimerKind.ESCALATION, PROGRESS + 21 * DAY),
        (TimerKind.RECLAIM_DUE, PROGRESS + 30 * DAY),
    ]
    assert {t.rule_id for t in found} == {"ka-default"}


def test_open_smb_opportunity_climbs_the_ladder_at_3_7_10_14_days(rules: Rulebook) -> None:
    found = timers(rules, _facts("SMB"), SHANGHAI)
    assert _schedule(found) == [
        (TimerKind.FOLLOW_UP, PROGRESS + 3 * DAY),
        (TimerKind.STALE_WARNING, PROGRESS + 7 * DAY),
        (TimerKind.ESCALATION, PROGRESS + 10 * DAY),
        (TimerKind.RECLAIM_DUE, PROGRESS + 14 * DAY),
    ]
    assert {t.rule_id for t in found} == {"smb-default"}


def test_timer_detail_names_the_rules_version_and_the_facts(rules: Rulebook) -> None:
    [follow_up, *_] = timers(rules, _facts("KA"), SHANGHAI)
    assert follow_up.detail["rules_version"] == rules.version
    assert follow_up.detail["tier"] == "KA"
    assert follow_up.detail["last_progress_at"] == PROGRESS.isoformat()


def test_paused_with_until_only_gets_pause_ended_at_midnight_in_shanghai(rules: Rulebook) -> None:
    facts = _facts(status=Status.PAUSED, paused_until=date(2026, 12, 1))
    found = timers(rules, facts, SHANGHAI)
    assert _schedule(found) == [(TimerKind.PAUSE_ENDED, datetime(2026, 11, 30, 16, 0, tzinfo=UTC))]
    assert found[0].due_at == start_of_day(date(2026, 12, 1), SHANGHAI)


def test_paused_without_until_gets_no_timer(rules: Rulebook) -> None:
    assert timers(rules, _facts(status=Status.PAUSED), SHANGHAI) == []


def test_deferred_only_gets_revisit_due_a_week_before_revisit_on(rules: Rulebook) -> None:
    facts = _facts(status=Status.DEFERRED, revisit_on=date(2027, 3, 15))
    found = timers(rules, facts, SHANGHAI)
    assert _schedule(found) == [
        (TimerKind.REVISIT_DUE, datetime(2027, 3, 8, 0, 0, tzinfo=SHANGHAI)),
    ]
    assert reclaim_at(found) is None


def test_won_with_contract_end_gets_renewal_due_90_days_before(rules: Rulebook) -> None:
    facts = _facts(status=Status.WON, contract_end_on=date(2027, 12, 31))
    found = timers(rules, facts, SHANGHAI)
    assert _schedule(found) == [
        (TimerKind.RENEWAL_DUE, datetime(2027, 12, 31, tzinfo=SHANGHAI) - 90 * DAY),
    ]
    assert found[0].due_at == datetime(2027, 10, 2, tzinfo=SHANGHAI)


def test_won_without_contract_end_gets_no_timer(rules: Rulebook) -> None:
    assert timers(rules, _facts(status=Status.WON), SHANGHAI) == []


@pytest.mark.parametrize("status", [Status.LOST, Status.VOIDED, Status.POOLED])
def test_closed_and_pooled_opportunities_get_no_timer(rules: Rulebook, status: Status) -> None:
    facts = _facts(
        status=status,
        paused_until=date(2026, 12, 1),
        revisit_on=date(2027, 3, 15),
        contract_end_on=date(2027, 12, 31),
    )
    assert timers(rules, facts, SHANGHAI) == []


def test_nothing_is_due_before_the_first_rung(rules: Rulebook) -> None:
    found = timers(rules, _facts("KA"), SHANGHAI)
    assert due(found, PROGRESS + 7 * DAY - timedelta(seconds=1)) == []


def test_a_rung_is_due_at_its_exact_time(rules: Rulebook) -> None:
    found = timers(rules, _facts("KA"), SHANGHAI)
    assert [t.kind for t in due(found, PROGRESS + 7 * DAY)] == [TimerKind.FOLLOW_UP]


def test_of_several_overdue_rungs_only_the_furthest_is_due(rules: Rulebook) -> None:
    found = timers(rules, _facts("KA"), SHANGHAI)
    assert [t.kind for t in due(found, PROGRESS + 22 * DAY)] == [TimerKind.ESCALATION]
    assert [t.kind for t in due(found, PROGRESS + 400 * DAY)] == [TimerKind.RECLAIM_DUE]


def test_overdue_revisit_is_due(rules: Rulebook) -> None:
    found = timers(rules, _facts(status=Status.DEFERRED, revisit_on=date(2027, 3, 15)), SHANGHAI)
    now = datetime(2027, 3, 9, tzinfo=SHANGHAI)
    assert [t.kind for t in due(found, now)] == [TimerKind.REVISIT_DUE]


def test_next_reminder_at_is_the_next_rung_after_now(rules: Rulebook) -> None:
    found = timers(rules, _facts("KA"), SHANGHAI)
    assert next_reminder_at(found, PROGRESS) == PROGRESS + 7 * DAY
    assert next_reminder_at(found, PROGRESS + 8 * DAY) == PROGRESS + 14 * DAY
    assert next_reminder_at(found, PROGRESS + 30 * DAY) is None


def test_next_reminder_at_ignores_renewal(rules: Rulebook) -> None:
    found = timers(rules, _facts(status=Status.WON, contract_end_on=date(2027, 12, 31)), SHANGHAI)
    assert next_reminder_at(found, PROGRESS) is None


def test_reclaim_at_is_the_reclaim_rung(rules: Rulebook) -> None:
    assert reclaim_at(timers(rules, _facts("KA"), SHANGHAI)) == PROGRESS + 30 * DAY
    assert reclaim_at(timers(rules, _facts("SMB"), SHANGHAI)) == PROGRESS + 14 * DAY


def test_reclaim_at_is_none_while_paused(rules: Rulebook) -> None:
    facts = _facts(status=Status.PAUSED, paused_until=date(2026, 12, 1))
    assert reclaim_at(timers(rules, facts, SHANGHAI)) is None
