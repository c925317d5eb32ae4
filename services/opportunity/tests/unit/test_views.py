"""`next_reminder_at` and `reclaim_at` in the state the service shows, under a rule that counts
working days of mainland China (SPEC §8.4)."""

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts.rules import Reminders, load_rulebook
from opportunity.application.views import with_schedule

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = load_rulebook().model_copy(
    update={
        "reminders": Reminders.model_validate(
            {
                "rules": [
                    {
                        "id": "working-days",
                        "follow_up_after": "3wd",
                        "reclaim_after": "10wd",
                    }
                ]
            }
        )
    }
)


def _state(last_progress_at: datetime) -> dict[str, Any]:
    return {
        "type": "new",
        "customer": {"tier": "SMB", "ownership": "PRIVATE"},
        "stage": "proposal",
        "status": "open",
        "last_progress_at": last_progress_at.isoformat(),
        "paused_until": None,
        "revisit_on": None,
        "contract_end_on": None,
    }


def test_reclaim_at_counts_working_days_over_national_day() -> None:
    # Wednesday 30 Sep 2026, 10:30 in Shanghai: 8, 9, 10 (the working Saturday) … 20 October.
    progress = datetime(2026, 9, 30, 2, 30, tzinfo=UTC)

    shown = with_schedule(_state(progress), RULES, SHANGHAI, progress)

    assert datetime.fromisoformat(shown["next_reminder_at"]) == datetime(
        2026, 10, 10, 10, 30, tzinfo=SHANGHAI
    )
    assert datetime.fromisoformat(shown["reclaim_at"]) == datetime(
        2026, 10, 20, 10, 30, tzinfo=SHANGHAI
    )
