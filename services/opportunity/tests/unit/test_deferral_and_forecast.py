"""Coded deferral reasons and the forecast category override (SPEC §9, issue 14) without I/O:
the day a deferral is revisited by default, the reasons and notes refused; an override recorded
as an update's change, refused for an unknown category, shown over the stage's category."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chassis.auth import Forbidden, Principal
from contracts.rules import Role, load_rulebook
from opportunity.application.views import state_of, with_schedule
from opportunity.domain.access import check_forecast_override
from opportunity.domain.deferral import revisit_day
from opportunity.domain.errors import InvalidValue
from services.opportunity.tests.opportunities import new_opportunity

RULES = load_rulebook()
SHANGHAI = ZoneInfo("Asia/Shanghai")
# 20:00 UTC on 30 November is already 1 December in Shanghai.
LATE = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reason", "days"),
    [("tender_cycle", 90), ("budget_cycle", 90), ("fiscal_year", 180), ("leadership_change", 60)],
)
def test_revisit_on_defaults_to_the_deferral_day_in_the_business_zone_plus_the_reasons_lead(
    reason: str, days: int
) -> None:
    assert revisit_day(RULES, reason, None, None, LATE, SHANGHAI) == date(2026, 12, 1) + timedelta(
        days=days
    )


def test_a_revisit_day_given_is_kept() -> None:
    given = date(2027, 2, 1)
    assert revisit_day(RULES, "tender_cycle", None, given, LATE, SHANGHAI) == given


def test_an_unknown_reason_is_refused_naming_reason_and_listing_the_ids() -> None:
    with pytest.raises(InvalidValue) as refused:
        revisit_day(RULES, "招标周期未到", None, None, LATE, SHANGHAI)
    assert refused.value.field == "reason"
    assert "tender_cycle" in refused.value.message
    assert "other" in refused.value.message


@pytest.mark.parametrize("note", [None, "", "   "])
def test_a_reason_that_requires_a_note_refuses_none_naming_note(note: str | None) -> None:
    with pytest.raises(InvalidValue) as refused:
        revisit_day(RULES, "other", note, None, LATE, SHANGHAI)
    assert refused.value.field == "note"
    assert revisit_day(RULES, "other", "reorganisation", None, LATE, SHANGHAI) == date(2026, 12, 31)


def test_a_deferral_keeps_its_note_until_reactivated() -> None:
    opportunity = new_opportunity()
    at = opportunity.last_event_at + timedelta(hours=1)
    opportunity.defer("other", (at + timedelta(days=30)).date(), at, "rep-1", "reorganisation")
    deferred = opportunity.collect_events()[-1]
    assert deferred.note == "reorganisation"  # type: ignore[attr-defined]
    assert (state_of(opportunity)["deferred_reason"], state_of(opportunity)["deferred_note"]) == (
        "other",
        "reorganisation",
    )
    opportunity.reactivate(at + timedelta(hours=1), "rep-1")
    assert state_of(opportunity)["deferred_note"] is None


def test_a_forecast_category_override_is_an_updates_change_shown_over_the_stages() -> None:
    opportunity = new_opportunity()
    at = opportunity.last_event_at + timedelta(hours=1)
    shown = with_schedule(state_of(opportunity), RULES, SHANGHAI, at)
    stage = next(
        s
        for p in RULES.pipelines
        if p.id == opportunity.pipeline_id
        for s in p.stages
        if s.id == opportunity.stage
    )
    assert (shown["forecast_category"], shown["forecast_category_override"]) == (
        stage.forecast_category.value,
        None,
    )
    opportunity.update_info({"forecast_category": "commit"}, at, "manager-east")
    assert type(opportunity.collect_events()[-1]).__name__ == "InfoUpdated"
    shown = with_schedule(state_of(opportunity), RULES, SHANGHAI, at)
    assert (shown["forecast_category"], shown["forecast_category_override"]) == ("commit", "commit")
    opportunity.update_info({"forecast_category": None}, at, "manager-east")
    cleared = with_schedule(state_of(opportunity), RULES, SHANGHAI, at)
    assert cleared["forecast_category"] == stage.forecast_category.value
    assert cleared["forecast_category_override"] is None


@pytest.mark.parametrize("category", ["closed", "maybe", ""])
def test_an_unknown_forecast_category_is_refused_naming_it(category: str) -> None:
    opportunity = new_opportunity()
    at = opportunity.last_event_at + timedelta(hours=1)
    with pytest.raises(InvalidValue) as refused:
        opportunity.update_info({"forecast_category": category}, at, "admin")
    assert refused.value.field == "forecast_category"
    assert opportunity.forecast_category_override is None


@pytest.mark.parametrize("role", [Role.REP, Role.SERVICE, Role.VIEWER])
def test_only_a_manager_or_an_admin_overrides_the_forecast_category(role: Role) -> None:
    check_forecast_override(Principal("manager-east", Role.MANAGER, "east"))
    check_forecast_override(Principal("admin", Role.ADMIN))
    with pytest.raises(Forbidden) as refused:
        check_forecast_override(Principal("someone", role, "east"))
    assert refused.value.detail["rule"] == "role.forecast_category"
