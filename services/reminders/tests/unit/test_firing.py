"""What fires when, on a hand-moved clock: every kind, most-specific-wins, pauses, deferrals,
progress, overdue timers, renewals — through the real consumer intake, store and scheduler
(SQLite and PostgreSQL), with a publisher that keeps what it is given."""

from datetime import date, datetime, timedelta
from uuid import UUID, uuid5

import pytest

from contracts.commands import CreateRenewalCommand, ReclaimCommand
from contracts.rules import Match, ReminderRule, Reminders, Rulebook
from contracts.schedule import start_of_day
from reminders.adapters.store import Store
from reminders.domain.clock import ManualClock
from reminders.domain.timers import REMINDER_NAMESPACE, Planner
from services.reminders.tests.helpers import (
    DAY,
    SHANGHAI,
    T0,
    Harness,
    Opportunity,
    kinds,
)

SECOND = timedelta(seconds=1)


async def test_an_open_ka_opportunity_climbs_the_ladder_at_7_14_21_30_days(
    harness: Harness,
) -> None:
    o = Opportunity("KA")
    harness.feed(o.create(T0))
    assert await harness.at(T0 + 7 * DAY - SECOND) == []
    assert kinds(await harness.at(T0 + 7 * DAY)) == ["follow_up"]
    assert await harness.at(T0 + 13 * DAY) == []
    assert kinds(await harness.at(T0 + 14 * DAY)) == ["stale_warning"]
    assert kinds(await harness.at(T0 + 21 * DAY)) == ["escalation"]
    assert kinds(await harness.at(T0 + 30 * DAY)) == ["reclaim_due"]
    assert await harness.at(T0 + 90 * DAY) == []


async def test_an_open_smb_opportunity_climbs_the_ladder_at_3_7_10_14_days(
    harness: Harness,
) -> None:
    o = Opportunity("SMB")
    harness.feed(o.create(T0))
    fired = []
    for day in range(1, 20):
        fired += [(day, r.kind.value) for r in await harness.at(T0 + day * DAY)]
    assert fired == [
        (3, "follow_up"),
        (7, "stale_warning"),
        (10, "escalation"),
        (14, "reclaim_due"),
    ]


async def test_reclaim_due_also_commands_the_reclaim_based_on_the_last_progress(
    harness: Harness,
) -> None:
    o = Opportunity("KA")
    harness.feed(o.create(T0), o.info(T0 + DAY), o.follow_up(T0 + 2 * DAY), o.info(T0 + 3 * DAY))
    [reminder] = await harness.at(T0 + 32 * DAY)
    [command] = harness.publisher.commands()
    assert isinstance(command, ReclaimCommand)
    assert command.opportunity_id == o.id
    assert command.based_on_version == 3  # the follow-up, not the info update after it
    assert command.rule_id == "ka-default" == reminder.rule_id
    assert command.issued_at == reminder.fired_at
    assert "ka-default" in command.reason


async def test_a_reminder_names_the_rule_its_version_and_the_facts_that_matched(
    harness: Harness, rules: Rulebook
) -> None:
    o = Opportunity("KA", ownership="SOE", stage="proposal", owner_id="rep-7", team_id="east")
    harness.feed(o.create(T0))
    [reminder] = await harness.at(T0 + 7 * DAY + 12 * 3600 * SECOND)
    assert (reminder.opportunity_id, reminder.owner_id, reminder.team_id) == (o.id, "rep-7", "east")
    assert reminder.due_at == T0 + 7 * DAY
    assert reminder.fired_at == T0 + 7.5 * DAY
    detail = reminder.detail
    assert detail["rule_id"] == "ka-default"
    assert detail["rules_version"] == rules.version
    assert (detail["tier"], detail["ownership"], detail["stage"]) == ("KA", "SOE", "proposal")
    assert detail["idle_days"] == 7.5
    assert datetime.fromisoformat(detail["last_progress_at"]) == T0
    assert detail["last_progress_version"] == 1
    assert detail["follow_up_after"] == "P7D"
    assert detail["match"] == {"tier": "KA"}


async def test_an_escalation_goes_to_the_manager_of_the_team(harness: Harness) -> None:
    east, west = Opportunity("SMB", team_id="east"), Opportunity("SMB", team_id="west")
    nobody = Opportunity("SMB", team_id="north")
    harness.feed(east.create(T0), west.create(T0), nobody.create(T0))
    found = {r.opportunity_id: r.detail for r in await harness.at(T0 + 10 * DAY)}
    assert found[east.id]["manager_id"] == "manager-east"
    assert found[west.id]["manager_ids"] == ["manager-west"]
    assert found[nobody.id]["manager_id"] is None


async def test_the_reminder_id_is_derived_from_opportunity_rule_and_due_time(
    harness: Harness,
) -> None:
    o = Opportunity("SMB")
    harness.feed(o.create(T0))
    [reminder] = await harness.at(T0 + 3 * DAY)
    due = (T0 + 3 * DAY).isoformat()
    assert UUID(reminder.reminder_id) == uuid5(REMINDER_NAMESPACE, f"{o.id}/smb-default/{due}")


def _with_rules(rules: Rulebook, *extra: ReminderRule) -> Rulebook:
    reminders = Reminders(
        revisit_lead=rules.reminders.revisit_lead, rules=(*rules.reminders.rules, *extra)
    )
    return rules.model_copy(update={"reminders": reminders})


async def test_the_most_specific_rule_wins(store: Store, rules: Rulebook) -> None:
    specific = ReminderRule(
        id="ka-soe-negotiation",
        match=Match(tier="KA", ownership="SOE", stage="negotiation"),
        follow_up_after=timedelta(days=2),
        reclaim_after=timedelta(days=60),
    )
    less = ReminderRule(
        id="ka-negotiation",
        match=Match(tier="KA", stage="negotiation"),
        follow_up_after=timedelta(days=4),
    )
    harness = Harness(store, Planner(_with_rules(rules, less, specific), SHANGHAI), ManualClock(T0))
    soe = Opportunity("KA", ownership="SOE", stage="negotiation")
    private = Opportunity("KA", ownership="PRIVATE", stage="negotiation")
    elsewhere = Opportunity("KA", ownership="SOE", stage="proposal")
    harness.feed(soe.create(T0), private.create(T0), elsewhere.create(T0))
    fired = {}
    for day in range(1, 8):
        for r in await harness.at(T0 + day * DAY):
            fired[r.opportunity_id] = (day, r.rule_id)
    assert fired == {
        soe.id: (2, "ka-soe-negotiation"),
        private.id: (4, "ka-negotiation"),
        elsewhere.id: (7, "ka-default"),
    }


async def test_of_two_equally_specific_rules_the_one_written_first_wins(
    store: Store, rules: Rulebook
) -> None:
    first = ReminderRule(
        id="first", match=Match(tier="SMB", stage="proposal"), follow_up_after=timedelta(days=1)
    )
    second = ReminderRule(
        id="second",
        match=Match(ownership="SOE", stage="proposal"),
        follow_up_after=timedelta(days=2),
    )
    harness = Harness(store, Planner(_with_rules(rules, first, second), SHANGHAI), ManualClock(T0))
    o = Opportunity("SMB", ownership="SOE", stage="proposal")
    harness.feed(o.create(T0))
    [reminder] = await harness.at(T0 + DAY)
    assert reminder.rule_id == "first"


async def test_a_working_day_rule_waits_out_national_day_and_reclaims_after_its_span(
    store: Store, rules: Rulebook
) -> None:
    working = ReminderRule.model_validate(
        {
            "id": "smb-proposal-working-days",
            "match": {"tier": "SMB", "stage": "proposal"},
            "follow_up_after": "3wd",
            "reclaim_after": "10wd",
        }
    )
    progress = datetime(2026, 9, 30, 10, 30, tzinfo=SHANGHAI)  # the eve of 国庆
    harness = Harness(store, Planner(_with_rules(rules, working), SHANGHAI), ManualClock(progress))
    o = Opportunity("SMB", stage="proposal")
    harness.feed(o.create(progress))
    # 8 and 9 Oct, then the working Saturday 10 Oct (调休); the calendar rule says 3 Oct.
    follow_up_at = datetime(2026, 10, 10, 10, 30, tzinfo=SHANGHAI)
    assert await harness.at(follow_up_at - SECOND) == []
    [follow_up] = await harness.at(follow_up_at)
    assert (follow_up.kind.value, follow_up.rule_id) == ("follow_up", "smb-proposal-working-days")
    assert follow_up.due_at == follow_up_at
    assert follow_up.detail["follow_up_after"] == "3wd"
    # 12–16 and 19–20 Oct: the tenth working day.
    reclaim_at = datetime(2026, 10, 20, 10, 30, tzinfo=SHANGHAI)
    assert await harness.at(reclaim_at - SECOND) == []
    assert kinds(await harness.at(reclaim_at)) == ["reclaim_due"]
    [command] = harness.publisher.commands()
    assert isinstance(command, ReclaimCommand)
    assert "rule smb-proposal-working-days reclaims after 10wd" in command.reason


async def test_a_pause_stops_the_clocks_and_its_end_fires_pause_ended(harness: Harness) -> None:
    o = Opportunity("KA")
    until = date(2026, 11, 25)
    harness.feed(o.create(T0), o.pause(T0 + 2 * DAY, until))
    end = start_of_day(until, SHANGHAI)
    assert await harness.at(end - SECOND) == []  # 7 and 14 days passed: no ladder while paused
    [ended] = await harness.at(end)
    assert (ended.kind.value, ended.rule_id, ended.due_at) == ("pause_ended", "pause", end)
    assert ended.detail["until"] == until.isoformat()
    assert await harness.at(end + 10 * DAY) == []
    harness.feed(o.resume(end + 10 * DAY))  # resuming is progress: the ladder starts over
    assert await harness.at(end + 17 * DAY - SECOND) == []
    assert kinds(await harness.at(end + 17 * DAY)) == ["follow_up"]


async def test_a_pause_without_an_end_fires_nothing(harness: Harness) -> None:
    o = Opportunity("SMB")
    harness.feed(o.create(T0), o.pause(T0 + DAY, None))
    assert await harness.at(T0 + 400 * DAY) == []


async def test_a_deferral_gives_revisit_due_before_the_revisit_date_and_never_reclaim_due(
    harness: Harness,
) -> None:
    o = Opportunity("SMB")
    revisit_on = date(2027, 3, 15)
    harness.feed(o.create(T0), o.defer(T0 + DAY, revisit_on))
    due = start_of_day(revisit_on, SHANGHAI) - 7 * DAY
    fired = []
    for day in range(2, 400, 3):
        fired += [r.kind.value for r in await harness.at(T0 + day * DAY)]
    assert fired == ["revisit_due"]
    [revisit] = harness.publisher.reminders()
    assert revisit.due_at == due
    assert harness.publisher.commands() == []


async def test_reactivating_a_deferred_opportunity_restarts_the_ladder(harness: Harness) -> None:
    o = Opportunity("SMB")
    harness.feed(o.create(T0), o.defer(T0 + DAY, date(2027, 3, 15)), o.reactivate(T0 + 40 * DAY))
    assert kinds(await harness.at(T0 + 43 * DAY)) == ["follow_up"]


@pytest.mark.parametrize("progress", ["follow_up", "advance", "assign", "revert"])
async def test_progress_restarts_the_clocks(harness: Harness, progress: str) -> None:
    o = Opportunity("KA", stage="proposal")
    harness.feed(o.create(T0))
    at = T0 + 5 * DAY
    event = {
        "follow_up": lambda: o.follow_up(at),
        "advance": lambda: o.advance("negotiation", at),
        "assign": lambda: o.assign(at, "rep-2"),
        "revert": lambda: o.event(
            "StageReverted", at, from_stage="proposal", to_stage="initial_contact", reason="r"
        ),
    }[progress]()
    harness.feed(event)
    assert await harness.at(T0 + 12 * DAY - SECOND) == []
    [reminder] = await harness.at(T0 + 12 * DAY)
    assert reminder.kind.value == "follow_up"
    assert reminder.detail["last_progress_version"] == 2


async def test_an_update_that_is_no_progress_leaves_the_clocks_running(harness: Harness) -> None:
    o = Opportunity("KA")
    harness.feed(o.create(T0), o.info(T0 + 5 * DAY))
    assert kinds(await harness.at(T0 + 7 * DAY)) == ["follow_up"]


async def test_an_overdue_ladder_fires_only_its_furthest_rung(harness: Harness) -> None:
    stale, stalish = Opportunity("KA"), Opportunity("KA")
    harness.clock.set(T0 + 40 * DAY)
    harness.feed(stale.create(T0), stalish.create(T0 + 18 * DAY))  # imported history
    found = {r.opportunity_id: r.kind.value for r in await harness.tick()}
    assert found == {stale.id: "reclaim_due", stalish.id: "escalation"}
    assert len(harness.publisher.reminders()) == 2
    assert kinds(await harness.at(T0 + 48 * DAY)) == ["reclaim_due"]  # stalish: 30 days


async def test_a_late_scheduler_fires_only_the_furthest_rung_it_missed(harness: Harness) -> None:
    o = Opportunity("SMB")
    harness.feed(o.create(T0))
    assert kinds(await harness.at(T0 + 11 * DAY)) == ["escalation"]


async def test_a_won_opportunity_with_a_contract_end_commands_its_renewal_once(
    harness: Harness,
) -> None:
    o = Opportunity("KA", stage="signing")
    end = date(2027, 12, 31)
    harness.feed(o.create(T0), o.win(T0 + DAY, end))
    due = start_of_day(end, SHANGHAI) - 90 * DAY
    assert await harness.at(due - SECOND) == []
    assert await harness.at(due) == []  # a renewal is a command, not a reminder
    [renewal] = harness.publisher.commands()
    assert isinstance(renewal, CreateRenewalCommand)
    assert renewal.opportunity_id == o.id
    harness.feed(o.event("KeyPersonAdded", due + DAY, person_id="1", name="王总"))
    harness.new_scheduler()
    await harness.at(due + 30 * DAY)
    assert len(harness.publisher.commands()) == 1


@pytest.mark.parametrize("close", ["lose", "win_without_contract_end"])
async def test_a_closed_opportunity_gets_nothing(harness: Harness, close: str) -> None:
    o = Opportunity("SMB", stage="signing")
    created = o.create(T0)
    closing = o.lose(T0 + DAY) if close == "lose" else o.win(T0 + DAY, None)
    harness.feed(created, closing)
    assert await harness.at(T0 + 400 * DAY) == []
    assert harness.publisher.sent == []


async def test_a_pooled_opportunity_waits_until_someone_takes_it(harness: Harness) -> None:
    o = Opportunity("SMB", owner_id=None)
    harness.feed(o.create(T0))
    assert await harness.at(T0 + 40 * DAY) == []
    harness.feed(o.assign(T0 + 40 * DAY, "rep-2", claimed=True))
    [reminder] = await harness.at(T0 + 43 * DAY)
    assert (reminder.kind.value, reminder.owner_id) == ("follow_up", "rep-2")


async def test_a_reclaimed_opportunity_is_quiet_until_claimed(harness: Harness) -> None:
    o = Opportunity("KA")
    harness.feed(o.create(T0))
    assert kinds(await harness.at(T0 + 30 * DAY)) == ["reclaim_due"]
    harness.feed(o.reclaim(T0 + 30 * DAY + SECOND, command_id="c-1"))
    assert await harness.at(T0 + 100 * DAY) == []
    harness.feed(o.assign(T0 + 100 * DAY, "rep-2", claimed=True))
    assert kinds(await harness.at(T0 + 107 * DAY)) == ["follow_up"]
