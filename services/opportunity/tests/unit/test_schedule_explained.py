"""The rule that explains `next_reminder_at` and `reclaim_at` in the state the service shows:
which rule, which of its spans, counted from when — what the workbench tells the rep."""

from datetime import UTC, date, datetime, timedelta
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
                        "id": "smb-ladder",
                        "match": {"tier": "SMB"},
                        "follow_up_after": "P3D",
                        "warn_after": "P5D",
                        "reclaim_after": "P14D",
                    }
                ]
            }
        )
    }
)
PROGRESS = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


def _state(status: str = "open", paused_until: date | None = None) -> dict[str, Any]:
    return {
        "type": "new",
        "customer": {"tier": "SMB", "ownership": "PRIVATE"},
        "stage": "proposal",
        "status": status,
        "last_progress_at": PROGRESS.isoformat(),
        "paused_until": None if paused_until is None else paused_until.isoformat(),
        "revisit_on": None,
        "contract_end_on": None,
    }


def test_next_reminder_names_the_nearest_rung_of_the_rule_and_its_span() -> None:
    shown = with_schedule(_state(), RULES, SHANGHAI, PROGRESS + timedelta(hours=1))

    assert shown["next_reminder"] == {
        "kind": "follow_up",
        "rule_id": "smb-ladder",
        "due_at": (PROGRESS + timedelta(days=3)).isoformat(),
        "field": "follow_up_after",
        "after": "P3D",
        "counted_from": PROGRESS.isoformat(),
    }
    assert shown["next_reminder"]["due_at"] == shown["next_reminder_at"]


def test_once_the_follow_up_is_overdue_the_warning_is_next() -> None:
    shown = with_schedule(_state(), RULES, SHANGHAI, PROGRESS + timedelta(days=4))

    assert shown["next_reminder"]["kind"] == "stale_warning"
    assert shown["next_reminder"]["after"] == "P5D"


def test_reclaim_rule_explains_reclaim_at() -> None:
    shown = with_schedule(_state(), RULES, SHANGHAI, PROGRESS)

    rule = shown["reclaim_rule"]
    assert (rule["rule_id"], rule["field"], rule["after"]) == (
        "smb-ladder",
        "reclaim_after",
        "P14D",
    )
    assert rule["due_at"] == shown["reclaim_at"]
    assert datetime.fromisoformat(rule["due_at"]) == PROGRESS + timedelta(days=14)


def test_a_paused_deal_is_reminded_when_its_pause_ends_and_is_not_reclaimed() -> None:
    shown = with_schedule(_state("paused", date(2026, 11, 20)), RULES, SHANGHAI, PROGRESS)

    assert shown["reclaim_rule"] is None
    assert shown["reclaim_at"] is None
    assert shown["next_reminder"]["kind"] == "pause_ended"
    assert (shown["next_reminder"]["field"], shown["next_reminder"]["after"]) == (
        "until",
        "2026-11-20",
    )
    assert shown["next_reminder"]["counted_from"] is None


def test_a_won_deal_has_neither_explanation() -> None:
    shown = with_schedule(_state("won"), RULES, SHANGHAI, PROGRESS)

    assert shown["next_reminder"] is None
    assert shown["reclaim_rule"] is None
