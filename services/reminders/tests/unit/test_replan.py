"""What the timers were computed under: a change of it plans every opportunity again."""

import pytest

from contracts.rules import Reminders, load_rulebook
from reminders.application import replan
from reminders.application.replan import rules_fingerprint

CALENDAR_RULES = load_rulebook()
WORKING_DAY_RULES = CALENDAR_RULES.model_copy(
    update={
        "reminders": Reminders.model_validate(
            {"rules": [{"id": "working-days", "follow_up_after": "3wd", "reclaim_after": "10wd"}]}
        )
    }
)


def _fingerprints() -> tuple[str, str]:
    return (
        rules_fingerprint(CALENDAR_RULES, "Asia/Shanghai"),
        rules_fingerprint(WORKING_DAY_RULES, "Asia/Shanghai"),
    )


def test_a_new_calendar_replans_only_where_a_rule_counts_working_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calendar, working = _fingerprints()

    # A holidays release that publishes the next year's 调休 moves working-day due times.
    monkeypatch.setattr(replan, "CALENDAR", "holidays 9.999 CN")

    assert _fingerprints()[0] == calendar
    assert _fingerprints()[1] != working
