"""Every (status, command) pair of SPEC §2.3: allowed ones record their event, others nothing."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts.rules import load_rulebook
from opportunity.application.views import COMMAND_NAMES
from opportunity.domain.errors import CommandNotAllowed, InvalidValue
from opportunity.domain.lifecycle import ALLOWED_FROM
from opportunity.domain.opportunity import Opportunity
from services.opportunity.tests.opportunities import T0, new_opportunity

RULES = load_rulebook()
PIPELINE = RULES.pipeline("new")
STEP = timedelta(hours=1)

STATUSES = ("open", "paused", "deferred", "pooled", "won", "lost", "voided")
ACTIVE = frozenset({"open", "paused", "deferred", "pooled"})

# SPEC §2.3, copied by hand from the table rather than imported from the code under test.
SPEC_ALLOWED_FROM: dict[str, frozenset[str]] = {
    "advance": frozenset({"open"}),
    "revert": frozenset({"open"}),
    "follow-ups": frozenset({"open", "paused", "deferred"}),
    "update": ACTIVE,  # any but won/lost/voided
    "key-persons": frozenset(STATUSES) - {"voided"},
    "competitors": frozenset(STATUSES) - {"voided"},
    "documents": frozenset(STATUSES) - {"voided"},
    "pause": frozenset({"open"}),
    "resume": frozenset({"paused"}),
    "defer": frozenset({"open", "paused"}),
    "reactivate": frozenset({"deferred"}),
    "reclaim": frozenset({"open", "deferred"}),
    "assign": ACTIVE,  # any but won/lost/voided
    # "claim = a rep assigns a pooled one to self": only a pooled opportunity can be claimed;
    # claiming an owned one would take it from its owner without a manager.
    "claim": frozenset({"pooled"}),
    "win": frozenset({"open"}),
    "lose": frozenset({"open", "paused", "deferred"}),
    # "any but won/lost": a voided opportunity is already voided; voiding it twice is refused.
    "void": ACTIVE,
}
COMMANDS = tuple(SPEC_ALLOWED_FROM)


def opportunity_in(status: str, stage: str) -> tuple[Opportunity, datetime]:
    """A fresh opportunity brought to `stage`, then to `status`, by public commands only.

    Returns it with the time of its last event."""
    opp = new_opportunity()
    at = T0
    for to_stage in PIPELINE.stage_ids[1 : PIPELINE.index(stage) + 1]:
        at += STEP
        # Pass every stage on the way, so none is skipped.
        opp.advance(PIPELINE, to_stage, "rep", at, "rep-1")
    at += STEP
    if status == "paused":
        opp.pause("customer on holiday", at.date() + timedelta(days=7), at, "rep-1")
    elif status == "deferred":
        opp.defer("tender cycle not reached", at.date() + timedelta(days=60), at, "rep-1")
    elif status == "pooled":
        opp.reclaim("no progress", None, None, at, "manager-1")
    elif status == "won":
        opp.win(PIPELINE, Decimal("100000.00"), "C-2026-001", None, None, at, "rep-1")
    elif status == "lost":
        opp.lose(RULES, "price", None, at, "rep-1")
    elif status == "voided":
        opp.void("duplicate of another opportunity", at, "manager-1")
    assert opp.status == status
    return opp, at


def position_for(command: str, status: str) -> str:
    """A stage from which the command would be valid if the status allowed it.

    A win needs the last stage; from `proposal` an advance (to negotiation) and a revert (to
    initial_contact) are valid. A won opportunity is necessarily at the last stage."""
    return "signing" if command == "win" or status == "won" else "proposal"


@dataclass(frozen=True)
class Case:
    run: Callable[[Opportunity, datetime], None]
    event: str
    # The state expected afterwards, given the status before.
    expect: Callable[[str], dict[str, Any]]


CASES: dict[str, Case] = {
    "advance": Case(
        lambda o, at: o.advance(PIPELINE, "negotiation", "rep", at, "rep-1"),
        "StageAdvanced",
        lambda _: {"stage": "negotiation", "status": "open"},
    ),
    "revert": Case(
        lambda o, at: o.revert(PIPELINE, "initial_contact", "scope reopened", "rep", at, "rep-1"),
        "StageReverted",
        lambda _: {"stage": "initial_contact", "status": "open"},
    ),
    "follow-ups": Case(
        lambda o, at: o.log_follow_up("call", "talked to the CIO", at, "rep-1"),
        "FollowUpLogged",
        lambda before: {"follow_up_count": 1, "status": before},
    ),
    "update": Case(
        lambda o, at: o.update_info({"title": "Bigger deal", "amount": "120000.00"}, at, "rep-1"),
        "InfoUpdated",
        lambda before: {"title": "Bigger deal", "amount": Decimal("120000.00"), "status": before},
    ),
    "key-persons": Case(
        lambda o, at: o.add_key_person({"name": "Li Wei", "title": "CIO"}, at, "rep-1"),
        "KeyPersonAdded",
        lambda before: {"key_persons": [{"name": "Li Wei", "title": "CIO"}], "status": before},
    ),
    "competitors": Case(
        lambda o, at: o.record_competitor({"name": "RivalSoft"}, at, "rep-1"),
        "CompetitorRecorded",
        lambda before: {"competitors": [{"name": "RivalSoft"}], "status": before},
    ),
    "documents": Case(
        lambda o, at: o.attach_document({"name": "bid.pdf"}, at, "rep-1"),
        "DocumentAttached",
        lambda before: {"documents": [{"name": "bid.pdf"}], "status": before},
    ),
    "pause": Case(
        lambda o, at: o.pause("budget freeze", at.date() + timedelta(days=14), at, "rep-1"),
        "OpportunityPaused",
        lambda _: {"status": "paused", "pause_reason": "budget freeze"},
    ),
    "resume": Case(
        lambda o, at: o.resume(at, "rep-1"),
        "OpportunityResumed",
        lambda _: {"status": "open", "paused_at": None},
    ),
    "defer": Case(
        lambda o, at: o.defer("next tender in autumn", at.date() + timedelta(days=90), at, "rep-1"),
        "OpportunityDeferred",
        lambda _: {"status": "deferred", "deferred_reason": "next tender in autumn"},
    ),
    "reactivate": Case(
        lambda o, at: o.reactivate(at, "rep-1"),
        "OpportunityReactivated",
        lambda _: {"status": "open", "revisit_on": None},
    ),
    "reclaim": Case(
        lambda o, at: o.reclaim("no follow-up for 30 days", "ka-default", None, at, "svc"),
        "OpportunityReclaimed",
        lambda _: {"status": "pooled", "owner_id": None},
    ),
    "assign": Case(
        lambda o, at: o.assign("rep-2", at, "manager-1"),
        "OpportunityAssigned",
        # A pooled opportunity that gets an owner is open again; the others keep their status.
        lambda before: {"owner_id": "rep-2", "status": "open" if before == "pooled" else before},
    ),
    "claim": Case(
        lambda o, at: o.claim("rep-2", at, "rep-2"),
        "OpportunityAssigned",
        lambda _: {"owner_id": "rep-2", "status": "open"},
    ),
    "win": Case(
        lambda o, at: o.win(PIPELINE, Decimal("98000.00"), "C-2026-042", None, None, at, "rep-1"),
        "OpportunityWon",
        lambda _: {"status": "won", "amount": Decimal("98000.00"), "stage": "signing"},
    ),
    "lose": Case(
        lambda o, at: o.lose(RULES, "competitor", "RivalSoft", at, "rep-1"),
        "OpportunityLost",
        lambda _: {
            "status": "lost",
            "close_reason": "competitor",
            "lost_competitor": "RivalSoft",
        },
    ),
    "void": Case(
        lambda o, at: o.void("entered twice", at, "manager-1"),
        "OpportunityVoided",
        lambda _: {"status": "voided", "close_reason": "entered twice"},
    ),
}

ALLOWED_PAIRS = [(s, c) for c in COMMANDS for s in STATUSES if s in SPEC_ALLOWED_FROM[c]]
REFUSED_PAIRS = [(s, c) for c in COMMANDS for s in STATUSES if s not in SPEC_ALLOWED_FROM[c]]


def spec_allowed_commands(status: str) -> list[str]:
    return sorted(c for c, statuses in SPEC_ALLOWED_FROM.items() if status in statuses)


def test_the_tables_cover_every_status_and_command_pair() -> None:
    assert set(CASES) == set(COMMANDS)
    assert len(ALLOWED_PAIRS) + len(REFUSED_PAIRS) == len(STATUSES) * len(COMMANDS)


def test_the_code_allows_each_command_from_the_statuses_the_spec_lists() -> None:
    """The code names each command by its aggregate method; the API by the SPEC's name."""
    assert {COMMAND_NAMES[c]: {str(s) for s in v} for c, v in ALLOWED_FROM.items()} == {
        c: set(v) for c, v in SPEC_ALLOWED_FROM.items()
    }


@pytest.mark.parametrize(("status", "command"), ALLOWED_PAIRS)
def test_an_allowed_command_records_its_event_and_changes_state(status: str, command: str) -> None:
    opp, last = opportunity_in(status, position_for(command, status))
    pending, version = len(opp.pending_events), opp.version
    at = last + STEP

    CASES[command].run(opp, at)

    assert len(opp.pending_events) == pending + 1
    recorded = opp.pending_events[-1]
    assert type(recorded).__name__ == CASES[command].event
    assert recorded.originator_version == opp.version == version + 1
    expected = CASES[command].expect(status)
    assert {name: getattr(opp, name) for name in expected} == expected
    assert opp.last_event_at == at


@pytest.mark.parametrize(("status", "command"), REFUSED_PAIRS)
def test_a_refused_command_raises_with_status_and_allowed_commands_and_records_nothing(
    status: str, command: str
) -> None:
    opp, last = opportunity_in(status, position_for(command, status))
    pending, version = len(opp.pending_events), opp.version
    before = dict(vars(opp))

    with pytest.raises(CommandNotAllowed) as refused:
        CASES[command].run(opp, last + STEP)

    allowed = refused.value.facts["allowed_commands"]
    assert COMMAND_NAMES[refused.value.facts["command"]] == command
    assert refused.value.facts["status"] == status
    assert allowed == sorted(allowed)
    assert sorted(COMMAND_NAMES[c] for c in allowed) == spec_allowed_commands(status)
    assert len(opp.pending_events) == pending
    assert opp.version == version
    assert vars(opp) == before


def test_a_created_opportunity_without_owner_waits_in_the_pool() -> None:
    opp = new_opportunity(owner_id=None, source="lead", lead_id="lead-9", actor="svc")
    assert (opp.status, opp.version, opp.stage) == ("pooled", 1, "initial_contact")
    assert [type(e).__name__ for e in opp.pending_events] == ["OpportunityCreated"]


@pytest.mark.parametrize("command", ["revert", "pause", "defer", "reclaim", "void"])
def test_a_command_without_its_reason_is_refused(command: str) -> None:
    opp, last = opportunity_in("open", "proposal")
    at = last + STEP
    runs: dict[str, Callable[[], None]] = {
        "revert": lambda: opp.revert(PIPELINE, "initial_contact", "", "rep", at, "rep-1"),
        "pause": lambda: opp.pause("", None, at, "rep-1"),
        "defer": lambda: opp.defer("", at.date() + timedelta(days=30), at, "rep-1"),
        "reclaim": lambda: opp.reclaim("", None, None, at, "manager-1"),
        "void": lambda: opp.void("", at, "manager-1"),
    }
    pending = len(opp.pending_events)

    with pytest.raises(InvalidValue) as refused:
        runs[command]()

    assert refused.value.field == "reason"
    assert len(opp.pending_events) == pending


@pytest.mark.parametrize(
    "changes",
    [{"title": "New title", "amount": "lots"}, {"title": "New title", "expected_close_on": "soon"}],
)
def test_an_update_with_unreadable_values_is_refused_and_changes_nothing(
    changes: dict[str, str | None],
) -> None:
    opp, last = opportunity_in("open", "proposal")
    pending, version = len(opp.pending_events), opp.version

    with pytest.raises(InvalidValue):
        opp.update_info(changes, last + STEP, "rep-1")

    assert (opp.title, len(opp.pending_events), opp.version) == (None, pending, version)
