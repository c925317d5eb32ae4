"""Time in the aggregate: imported `occurred_at`, paused time, progress, pool moves, replay."""

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts.rules import load_rulebook
from opportunity.domain.errors import InvalidValue, OccurredAtRefused
from opportunity.domain.opportunity import Opportunity
from services.opportunity.tests.opportunities import T0, new_opportunity

RULES = load_rulebook()
PIPELINE = RULES.pipeline("new")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def last_event(opp: Opportunity) -> Any:
    """The last recorded event, typed loosely to read its attributes."""
    return opp.pending_events[-1]


def event_names(opp: Opportunity) -> list[str]:
    return [type(e).__name__ for e in opp.pending_events]


# -- occurred_at -------------------------------------------------------------------------------

EARLIER_COMMANDS: dict[str, Callable[[Opportunity, datetime], None]] = {
    "advance": lambda o, at: o.advance(PIPELINE, "requirements", "service", at, "svc"),
    "follow-ups": lambda o, at: o.log_follow_up("call", "imported", at, "svc"),
    "update": lambda o, at: o.update_info({"title": "Imported"}, at, "svc"),
    "pause": lambda o, at: o.pause("imported", None, at, "svc"),
    "assign": lambda o, at: o.assign("rep-2", at, "svc"),
    "void": lambda o, at: o.void("imported", at, "svc"),
}


@pytest.mark.parametrize("command", EARLIER_COMMANDS)
def test_a_command_before_the_last_event_is_refused_and_records_nothing(command: str) -> None:
    opp = new_opportunity()
    opp.log_follow_up("visit", "met the CIO", T0 + DAY, "rep-1")
    pending, version = len(opp.pending_events), opp.version

    with pytest.raises(OccurredAtRefused) as refused:
        EARLIER_COMMANDS[command](opp, T0 + DAY - timedelta(seconds=1))

    assert refused.value.field == "occurred_at"
    assert refused.value.facts == {"field": "occurred_at"}
    assert (len(opp.pending_events), opp.version, opp.last_event_at) == (
        pending,
        version,
        T0 + DAY,
    )


def test_a_command_at_the_same_instant_as_the_last_event_is_accepted() -> None:
    opp = new_opportunity()

    opp.log_follow_up("call", "right after creating it", T0, "rep-1")

    assert event_names(opp) == ["OpportunityCreated", "FollowUpLogged"]


def test_an_imported_history_keeps_its_own_times() -> None:
    opp = new_opportunity()

    opp.advance(PIPELINE, "requirements", "service", T0 + 3 * DAY, "svc")

    assert (opp.created_at, opp.stage_entered_at, opp.last_event_at) == (
        T0,
        T0 + 3 * DAY,
        T0 + 3 * DAY,
    )


# -- pause, resume, defer ----------------------------------------------------------------------


def test_paused_time_is_recorded_on_resume() -> None:
    opp = new_opportunity()
    opp.pause("customer on holiday", (T0 + 10 * DAY).date(), T0 + HOUR, "rep-1")

    opp.resume(T0 + HOUR + 3 * DAY + 30 * timedelta(minutes=1), "rep-1")

    resumed = last_event(opp)
    assert type(resumed).__name__ == "OpportunityResumed"
    assert resumed.paused_seconds == 3 * 86400 + 30 * 60
    assert (opp.status, opp.paused_at, opp.paused_until, opp.pause_reason) == (
        "open",
        None,
        None,
        None,
    )


def test_a_second_pause_counts_only_its_own_length() -> None:
    opp = new_opportunity()
    opp.pause("holiday", None, T0 + HOUR, "rep-1")
    opp.resume(T0 + 2 * HOUR, "rep-1")
    opp.pause("budget freeze", None, T0 + 5 * HOUR, "rep-1")

    opp.resume(T0 + 8 * HOUR, "rep-1")

    assert last_event(opp).paused_seconds == 3 * 3600


def test_deferring_a_paused_opportunity_records_the_paused_time() -> None:
    opp = new_opportunity()
    opp.pause("holiday", None, T0 + HOUR, "rep-1")

    opp.defer("next tender in autumn", (T0 + 200 * DAY).date(), T0 + HOUR + 2 * DAY, "rep-1")

    deferred = last_event(opp)
    assert type(deferred).__name__ == "OpportunityDeferred"
    assert deferred.paused_seconds == 2 * 86400
    assert (opp.status, opp.revisit_on, opp.paused_at) == (
        "deferred",
        (T0 + 200 * DAY).date(),
        None,
    )


def test_deferring_an_open_opportunity_records_no_paused_time() -> None:
    opp = new_opportunity()

    opp.defer("next tender in autumn", (T0 + 200 * DAY).date(), T0 + HOUR, "rep-1")

    assert last_event(opp).paused_seconds == 0


def test_pause_records_reason_and_until() -> None:
    opp = new_opportunity()

    opp.pause("customer on holiday", (T0 + 7 * DAY).date(), T0 + HOUR, "rep-1")

    paused = last_event(opp)
    assert (type(paused).__name__, paused.reason, paused.until) == (
        "OpportunityPaused",
        "customer on holiday",
        (T0 + 7 * DAY).date(),
    )
    assert (opp.status, opp.paused_at) == ("paused", T0 + HOUR)


@pytest.mark.parametrize("days", [0, -1, -30])
def test_a_pause_until_not_after_its_day_is_refused(days: int) -> None:
    opp = new_opportunity()
    at = T0 + HOUR

    with pytest.raises(InvalidValue) as refused:
        opp.pause("holiday", at.date() + timedelta(days=days), at, "rep-1")

    assert refused.value.field == "until"
    assert (event_names(opp), opp.status) == (["OpportunityCreated"], "open")


@pytest.mark.parametrize("days", [0, -1, -365])
def test_a_defer_with_revisit_on_not_in_the_future_is_refused(days: int) -> None:
    opp = new_opportunity()
    at = T0 + HOUR

    with pytest.raises(InvalidValue) as refused:
        opp.defer("tender", at.date() + timedelta(days=days), at, "rep-1")

    assert refused.value.field == "revisit_on"
    assert (event_names(opp), opp.status) == (["OpportunityCreated"], "open")


# -- progress ----------------------------------------------------------------------------------


def test_creation_is_progress() -> None:
    opp = new_opportunity()

    assert (opp.last_progress_at, opp.last_progress_version) == (T0, 1)


Step = Callable[[Opportunity, datetime], None]


def nothing(opp: Opportunity, at: datetime) -> None:
    """No setup needed."""


# (setup, command); the setup runs a day before the command.
PROGRESS: dict[str, tuple[Step, Step]] = {
    "advance": (
        nothing,
        lambda o, at: o.advance(PIPELINE, "requirements", "rep", at, "rep-1"),
    ),
    "revert": (
        lambda o, at: o.advance(PIPELINE, "requirements", "rep", at, "rep-1"),
        lambda o, at: o.revert(PIPELINE, "initial_contact", "wrong contact", "rep", at, "rep-1"),
    ),
    "follow-ups": (nothing, lambda o, at: o.log_follow_up("call", "x", at, "rep-1")),
    "resume": (
        lambda o, at: o.pause("holiday", None, at, "rep-1"),
        lambda o, at: o.resume(at, "rep-1"),
    ),
    "reactivate": (
        lambda o, at: o.defer("tender", at.date() + 90 * DAY, at, "rep-1"),
        lambda o, at: o.reactivate(at, "rep-1"),
    ),
    "assign": (nothing, lambda o, at: o.assign("rep-2", at, "manager-1")),
    "claim": (
        lambda o, at: o.reclaim("stale", None, None, at, "svc"),
        lambda o, at: o.claim("rep-2", at, "rep-2"),
    ),
}
NOT_PROGRESS: dict[str, Step] = {
    "update": lambda o, at: o.update_info({"amount": "50000"}, at, "rep-1"),
    "key-persons": lambda o, at: o.add_key_person({"name": "Li Wei"}, at, "rep-1"),
    "competitors": lambda o, at: o.record_competitor({"name": "RivalSoft"}, at, "rep-1"),
    "documents": lambda o, at: o.attach_document({"name": "bid.pdf"}, at, "rep-1"),
    "pause": lambda o, at: o.pause("holiday", None, at, "rep-1"),
    "defer": lambda o, at: o.defer("tender", at.date() + 90 * DAY, at, "rep-1"),
    "reclaim": lambda o, at: o.reclaim("stale", "ka-default", "cmd-1", at, "svc"),
}


@pytest.mark.parametrize("command", PROGRESS)
def test_a_progress_event_moves_last_progress(command: str) -> None:
    setup, run = PROGRESS[command]
    opp = new_opportunity()
    setup(opp, T0 + DAY)
    at = T0 + 2 * DAY

    run(opp, at)

    assert opp.last_progress_at == at
    assert opp.last_progress_version == opp.version == last_event(opp).originator_version


@pytest.mark.parametrize("command", NOT_PROGRESS)
def test_a_non_progress_event_leaves_last_progress(command: str) -> None:
    opp = new_opportunity()
    opp.log_follow_up("call", "x", T0 + DAY, "rep-1")
    progress = (opp.last_progress_at, opp.last_progress_version)

    NOT_PROGRESS[command](opp, T0 + 2 * DAY)

    assert opp.version == 3
    assert (opp.last_progress_at, opp.last_progress_version) == progress == (T0 + DAY, 2)
    assert opp.last_event_at == T0 + 2 * DAY


# -- the pool ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["open", "deferred"])
def test_reclaim_records_previous_owner_and_status_and_pools_it(status: str) -> None:
    opp = new_opportunity()
    if status == "deferred":
        opp.defer("tender", (T0 + 90 * DAY).date(), T0 + HOUR, "rep-1")

    opp.reclaim("no progress for 30 days", "ka-default", "cmd-7", T0 + 31 * DAY, "svc")

    reclaimed = last_event(opp)
    assert type(reclaimed).__name__ == "OpportunityReclaimed"
    assert (reclaimed.previous_owner_id, reclaimed.previous_status) == ("rep-1", status)
    assert (reclaimed.reason, reclaimed.rule_id, reclaimed.command_id) == (
        "no progress for 30 days",
        "ka-default",
        "cmd-7",
    )
    assert (opp.status, opp.owner_id, opp.revisit_on, opp.team_id) == ("pooled", None, None, "east")


def test_claiming_a_pooled_opportunity_opens_it_for_the_new_owner() -> None:
    opp = new_opportunity()
    opp.reclaim("stale", None, None, T0 + DAY, "svc")

    opp.claim("rep-2", T0 + 2 * DAY, "rep-2")

    claimed = last_event(opp)
    assert type(claimed).__name__ == "OpportunityAssigned"
    assert (claimed.owner_id, claimed.previous_owner_id, claimed.claimed) == ("rep-2", None, True)
    assert (opp.status, opp.owner_id) == ("open", "rep-2")


def test_an_opportunity_created_without_owner_is_claimed_like_a_reclaimed_one() -> None:
    opp = new_opportunity(owner_id=None)
    assert (opp.status, opp.owner_id) == ("pooled", None)

    opp.claim("rep-3", T0 + HOUR, "rep-3")

    assert (opp.status, opp.owner_id, opp.last_progress_at) == ("open", "rep-3", T0 + HOUR)


def test_assign_records_the_previous_owner_and_keeps_a_paused_one_paused() -> None:
    opp = new_opportunity()
    opp.pause("holiday", None, T0 + HOUR, "rep-1")

    opp.assign("rep-2", T0 + DAY, "manager-1")

    assigned = last_event(opp)
    assert (assigned.owner_id, assigned.previous_owner_id, assigned.claimed) == (
        "rep-2",
        "rep-1",
        False,
    )
    assert (opp.status, opp.owner_id) == ("paused", "rep-2")


# -- replay ------------------------------------------------------------------------------------


def replay(events: list[Any]) -> Opportunity:
    rebuilt: Opportunity = events[0].mutate(None)
    for e in events[1:]:
        rebuilt = e.mutate(rebuilt)
    return rebuilt


def a_long_life() -> Opportunity:
    opp = new_opportunity()
    at = T0

    def tick() -> datetime:
        nonlocal at
        at += DAY
        return at

    opp.advance(PIPELINE, "proposal", "rep", tick(), "rep-1")
    opp.log_follow_up("meeting", "demo", tick(), "rep-1")
    opp.update_info(
        {"title": "ERP rollout", "amount": "320000.00", "expected_close_on": "2026-09-30"},
        tick(),
        "rep-1",
    )
    opp.add_key_person({"name": "Li Wei", "title": "CIO"}, tick(), "rep-1")
    opp.record_competitor({"name": "RivalSoft"}, tick(), "rep-1")
    opp.attach_document({"name": "bid.pdf"}, tick(), "rep-1")
    opp.pause("holiday", None, tick(), "rep-1")
    opp.resume(tick(), "rep-1")
    opp.defer("tender cycle", (at + 60 * DAY).date(), tick(), "rep-1")
    opp.reactivate(tick(), "rep-1")
    opp.revert(PIPELINE, "requirements", "scope reopened", "rep", tick(), "rep-1")
    opp.reclaim("stale", "ka-default", None, tick(), "svc")
    opp.claim("rep-2", tick(), "rep-2")
    opp.assign("rep-3", tick(), "manager-1")
    for stage in ("proposal", "negotiation", "signing"):
        opp.advance(PIPELINE, stage, "rep", tick(), "rep-3")
    opp.win(PIPELINE, Decimal("300000.00"), "C-2026-11", None, None, tick(), "rep-3")
    return opp


def test_replaying_the_recorded_events_gives_the_same_state() -> None:
    opp = a_long_life()
    events = list(opp.collect_events())
    assert len(events) == opp.version == 19

    rebuilt = replay(events)

    assert rebuilt.version == opp.version
    assert vars(rebuilt) == vars(opp)
    assert (rebuilt.status, rebuilt.stage, rebuilt.owner_id, rebuilt.amount) == (
        "won",
        "signing",
        "rep-3",
        Decimal("300000.00"),
    )
    assert (rebuilt.last_progress_version, rebuilt.last_progress_at) == (18, T0 + 17 * DAY)


def test_replaying_part_of_the_history_gives_the_state_at_that_version() -> None:
    opp = a_long_life()
    events = list(opp.collect_events())

    at_pause = replay(events[:8])

    assert (at_pause.version, at_pause.status, at_pause.paused_at) == (8, "paused", T0 + 7 * DAY)
    assert at_pause.key_persons == [{"name": "Li Wei", "title": "CIO"}]
