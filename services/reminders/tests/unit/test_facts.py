"""What each event does to the facts an opportunity's timers follow from (pure)."""

from datetime import date

import pytest
from pydantic import ValidationError

from contracts.opportunity import Status
from reminders.domain.facts import OpportunityFacts, evolve, reclaimed
from services.reminders.tests.helpers import DAY, T0, Opportunity


def replay(o: Opportunity, *events: object) -> OpportunityFacts:
    facts = None
    for event in events:
        facts = evolve(facts, event, 3)  # type: ignore[arg-type]
    assert facts is not None
    return facts


def test_a_creation_starts_the_clock_at_its_occurred_at() -> None:
    o = Opportunity("KA", ownership="SOE", stage="proposal", owner_id="rep-9", team_id="west")
    facts = replay(o, o.create(T0))
    assert (facts.tier, facts.ownership, facts.stage, facts.type) == (
        "KA",
        "SOE",
        "proposal",
        "new",
    )
    assert (facts.status, facts.owner_id, facts.team_id) == (Status.OPEN, "rep-9", "west")
    assert (facts.last_progress_at, facts.last_progress_version, facts.partition) == (T0, 1, 3)


def test_a_creation_without_an_owner_waits_in_the_pool() -> None:
    o = Opportunity("SMB", owner_id=None)
    assert replay(o, o.create(T0)).status == Status.POOLED


def test_progress_moves_the_clock_and_other_events_only_the_version() -> None:
    o = Opportunity("KA")
    facts = replay(o, o.create(T0), o.follow_up(T0 + DAY), o.info(T0 + 2 * DAY))
    assert (facts.version, facts.last_progress_version) == (3, 2)
    assert facts.last_progress_at == T0 + DAY


def test_a_stage_change_is_progress_and_changes_the_stage() -> None:
    o = Opportunity("KA")
    facts = replay(o, o.create(T0), o.advance("proposal", T0 + DAY))
    assert (facts.stage, facts.last_progress_version) == ("proposal", 2)


def test_pause_defer_and_their_ends() -> None:
    o = Opportunity("KA")
    created = o.create(T0)
    paused = o.pause(T0 + DAY, date(2026, 12, 1))
    deferred = o.defer(T0 + 2 * DAY, date(2027, 3, 1))
    facts = replay(o, created, paused)
    assert (facts.status, facts.paused_until) == (Status.PAUSED, date(2026, 12, 1))
    facts = evolve(facts, deferred, 3)
    assert facts is not None
    assert (facts.status, facts.paused_until, facts.revisit_on) == (
        Status.DEFERRED,
        None,
        date(2027, 3, 1),
    )
    facts = evolve(facts, o.reactivate(T0 + 3 * DAY), 3)
    assert facts is not None
    assert (facts.status, facts.revisit_on, facts.last_progress_at) == (
        Status.OPEN,
        None,
        T0 + 3 * DAY,
    )


def test_a_reclaim_pools_and_an_assignment_to_another_team_moves_it() -> None:
    o = Opportunity("KA")
    facts = replay(o, o.create(T0), o.reclaim(T0 + DAY))
    assert (facts.status, facts.owner_id) == (Status.POOLED, None)
    o.team_id = "west"
    facts = evolve(facts, o.assign(T0 + 2 * DAY, "rep-3"), 3)
    assert facts is not None
    assert (facts.status, facts.owner_id, facts.team_id) == (Status.OPEN, "rep-3", "west")
    assert reclaimed(facts).status == Status.POOLED


def test_a_won_opportunity_keeps_its_contract_end() -> None:
    o = Opportunity("KA", stage="signing")
    facts = replay(o, o.create(T0), o.win(T0 + DAY, date(2027, 12, 31)))
    assert (facts.status, facts.contract_end_on) == (Status.WON, date(2027, 12, 31))


def test_an_older_or_repeated_event_changes_nothing() -> None:
    o = Opportunity("KA")
    created = o.create(T0)
    facts = replay(o, created, o.follow_up(T0 + DAY))
    assert evolve(facts, created, 3) is facts


def test_an_event_of_an_opportunity_never_created_here_gives_nothing() -> None:
    o = Opportunity("KA")
    o.create(T0)
    assert evolve(None, o.follow_up(T0 + DAY), 0) is None


def test_a_malformed_payload_of_a_known_event_is_refused() -> None:
    o = Opportunity("KA")
    facts = replay(o, o.create(T0))
    with pytest.raises(ValidationError):
        evolve(facts, o.event("StageAdvanced", T0 + DAY, from_stage="x"), 0)
