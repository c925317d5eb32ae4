"""Pipeline rules (SPEC §2.1, §6): stage order, skips, moves back, roles, wins, lost reasons."""

from datetime import timedelta
from decimal import Decimal
from textwrap import dedent
from typing import Any

import pytest

from contracts.rules import Pipeline, Rulebook, load_rulebook, parse_rulebook
from opportunity.domain.errors import InvalidValue, RoleNotAllowed, StageRuleBroken
from opportunity.domain.opportunity import Opportunity
from services.opportunity.tests.opportunities import T0, new_opportunity

RULES = load_rulebook()
LATER = T0 + timedelta(hours=1)


def _stage(stage_id: str, extra: str = "") -> str:
    return (
        f"      - {{id: {stage_id}, label: {{zh: '{stage_id}', en: '{stage_id}'}}, "
        f"probability: 0.5, forecast_category: pipeline{', ' + extra if extra else ''}}}\n"
    )


def custom_rules(new_stages: str, extra_pipelines: str = "") -> Rulebook:
    """A small rules file whose `new` pipeline has the given stages (YAML list items)."""
    plain = "".join(_stage(s) for s in ("initial_contact", "proposal", "signing"))
    text = (
        dedent(
            """\
            version: "test"
            pipelines:
              - id: new
                type: new
                stages:
            """
        )
        + new_stages
        + extra_pipelines
        + f"  - id: renewal\n    type: renewal\n    stages:\n{plain}"
        + f"  - id: resale\n    type: resale\n    stages:\n{plain}"
        + dedent(
            """\
            lost_reasons:
              - {id: price, label: {zh: "价格", en: "Price"}}
            reminders:
              rules:
                - {id: all, follow_up_after: P7D}
            """
        )
    )
    return parse_rulebook(text, "test-rules.yaml")


def opportunity_at(pipeline: Pipeline, stage: str) -> Opportunity:
    opp = new_opportunity(pipeline, stage)
    opp.collect_events()
    return opp


def recorded(opp: Opportunity) -> list[Any]:
    """The events recorded since the last call; typed loosely to read their attributes."""
    return list(opp.collect_events())


def move(opp: Opportunity, pipeline: Pipeline, how: str, to_stage: str, role: str = "rep") -> None:
    """An advance or a revert, whichever `how` names."""
    if how == "advance":
        opp.advance(pipeline, to_stage, role, LATER, f"{role}-1")
    else:
        opp.revert(pipeline, to_stage, "needs another look", role, LATER, f"{role}-1")


SMB_NEW = "  - id: new_smb\n    type: new\n    tier: SMB\n    stages:\n" + "".join(
    _stage(s) for s in ("initial_contact", "signing")
)
TIERED_RULES = custom_rules(
    "".join(_stage(s) for s in ("initial_contact", "proposal", "signing")), SMB_NEW
)


def test_renewal_pipeline_has_no_requirements_stage() -> None:
    renewal = RULES.pipeline_for("renewal", "KA")
    assert renewal.id == "renewal"
    assert renewal.stage_ids == ("initial_contact", "proposal", "negotiation", "signing")


@pytest.mark.parametrize("type_", ["new", "resale"])
def test_new_and_resale_pipelines_have_the_five_default_stages(type_: str) -> None:
    assert RULES.pipeline_for(type_, "SMB").stage_ids == (
        "initial_contact",
        "requirements",
        "proposal",
        "negotiation",
        "signing",
    )


def test_advance_may_skip_a_skippable_stage_and_names_it_in_the_event() -> None:
    pipeline = RULES.pipeline("new")
    opp = opportunity_at(pipeline, "initial_contact")

    opp.advance(pipeline, "proposal", "rep", LATER, "rep-1")

    (advanced,) = recorded(opp)
    assert type(advanced).__name__ == "StageAdvanced"
    assert (advanced.from_stage, advanced.to_stage) == ("initial_contact", "proposal")
    assert advanced.skipped == ["requirements"]
    assert (opp.stage, opp.stage_entered_at) == ("proposal", LATER)


def test_advance_to_the_next_stage_skips_nothing() -> None:
    pipeline = RULES.pipeline("new")
    opp = opportunity_at(pipeline, "initial_contact")

    opp.advance(pipeline, "requirements", "rep", LATER, "rep-1")

    assert recorded(opp)[0].skipped == []


def test_skipping_an_unskippable_stage_is_refused_and_records_nothing() -> None:
    pipeline = RULES.pipeline("new")
    opp = opportunity_at(pipeline, "initial_contact")

    with pytest.raises(StageRuleBroken) as refused:
        # Passes over requirements (skippable) and proposal (not skippable).
        opp.advance(pipeline, "negotiation", "rep", LATER, "rep-1")

    assert refused.value.facts["rule"] == "stage.skippable"
    assert refused.value.facts["not_skippable"] == ["proposal"]
    assert (opp.pending_events, opp.version, opp.stage) == ([], 1, "initial_contact")


@pytest.mark.parametrize("to_stage", ["proposal", "requirements", "initial_contact"])
def test_advance_to_the_same_or_an_earlier_stage_is_refused(to_stage: str) -> None:
    pipeline = RULES.pipeline("new")
    opp = opportunity_at(pipeline, "proposal")

    with pytest.raises(StageRuleBroken) as refused:
        opp.advance(pipeline, to_stage, "rep", LATER, "rep-1")

    assert refused.value.facts["rule"] == "advance.forward"
    assert (opp.pending_events, opp.version, opp.stage) == ([], 1, "proposal")


def test_revert_to_an_earlier_stage_records_the_reason() -> None:
    pipeline = RULES.pipeline("new")
    opp = opportunity_at(pipeline, "negotiation")

    opp.revert(pipeline, "requirements", "budget cut, scope reopened", "rep", LATER, "rep-1")

    (reverted,) = recorded(opp)
    assert type(reverted).__name__ == "StageReverted"
    assert (reverted.from_stage, reverted.to_stage) == ("negotiation", "requirements")
    assert reverted.reason == "budget cut, scope reopened"
    assert (opp.stage, opp.stage_entered_at) == ("requirements", LATER)


@pytest.mark.parametrize("to_stage", ["negotiation", "signing"])
def test_revert_to_the_same_or_a_later_stage_is_refused(to_stage: str) -> None:
    pipeline = RULES.pipeline("new")
    opp = opportunity_at(pipeline, "negotiation")

    with pytest.raises(StageRuleBroken) as refused:
        opp.revert(pipeline, to_stage, "why not", "rep", LATER, "rep-1")

    assert refused.value.facts["rule"] == "revert.backward"
    assert (opp.pending_events, opp.version) == ([], 1)


def test_revert_to_a_stage_without_allow_back_is_refused() -> None:
    rules = custom_rules(
        _stage("initial_contact", "allow_back: false") + _stage("proposal") + _stage("signing")
    )
    pipeline = rules.pipeline("new")
    opp = opportunity_at(pipeline, "signing")

    with pytest.raises(StageRuleBroken) as refused:
        opp.revert(pipeline, "initial_contact", "start over", "manager", LATER, "manager-1")
    assert refused.value.facts["rule"] == "stage.allow_back"
    assert (opp.pending_events, opp.stage) == ([], "signing")

    # The stage in between still allows moving back.
    opp.revert(pipeline, "proposal", "quote rejected", "rep", LATER, "rep-1")
    assert opp.stage == "proposal"


ROLE_RULES = custom_rules(
    _stage("initial_contact")
    + _stage("proposal")
    + _stage("approval", "roles: [manager, admin, service]")
    + _stage("signing")
)


@pytest.mark.parametrize(
    ("how", "start"),
    [("advance", "proposal"), ("revert", "signing")],
)
def test_a_stage_closed_to_reps_refuses_a_rep_but_lets_a_manager_in(how: str, start: str) -> None:
    pipeline = ROLE_RULES.pipeline("new")
    opp = opportunity_at(pipeline, start)

    with pytest.raises(RoleNotAllowed) as refused:
        move(opp, pipeline, how, "approval", role="rep")
    assert refused.value.facts == {"rule": "stage.roles", "stage": "approval"}
    assert (opp.pending_events, opp.stage) == ([], start)

    move(opp, pipeline, how, "approval", role="manager")
    assert opp.stage == "approval"
    assert len(opp.pending_events) == 1


def test_a_stage_closed_to_reps_does_not_stop_them_leaving_it() -> None:
    pipeline = ROLE_RULES.pipeline("new")
    opp = opportunity_at(pipeline, "approval")

    opp.advance(pipeline, "signing", "rep", LATER, "rep-1")

    assert opp.stage == "signing"


@pytest.mark.parametrize("stage", ["initial_contact", "requirements", "proposal", "negotiation"])
def test_win_before_the_last_stage_is_refused(stage: str) -> None:
    pipeline = RULES.pipeline("new")
    opp = opportunity_at(pipeline, stage)

    with pytest.raises(StageRuleBroken) as refused:
        opp.win(pipeline, Decimal("100000"), "C-1", None, None, LATER, "rep-1")

    assert refused.value.facts["rule"] == "stage.can_win"
    assert (opp.pending_events, opp.status) == ([], "open")


def test_win_at_the_last_stage_records_amount_and_contract() -> None:
    pipeline = RULES.pipeline("new")
    opp = opportunity_at(pipeline, "signing")

    opp.win(
        pipeline,
        Decimal("250000.00"),
        "C-2026-7",
        T0.date(),
        T0.date() + timedelta(days=365),
        LATER,
        "rep-1",
    )

    (won,) = recorded(opp)
    assert type(won).__name__ == "OpportunityWon"
    assert (won.stage, won.amount, won.contract_ref, won.currency) == (
        "signing",
        Decimal("250000.00"),
        "C-2026-7",
        "CNY",
    )
    assert (opp.status, opp.closed_at, opp.contract_end_on) == (
        "won",
        LATER,
        T0.date() + timedelta(days=365),
    )


def test_win_is_allowed_before_the_last_stage_where_the_rules_say_can_win() -> None:
    rules = custom_rules(
        _stage("initial_contact")
        + _stage("proposal", "can_win: true")
        + _stage("negotiation")
        + _stage("signing")
    )
    pipeline = rules.pipeline("new")
    opp = opportunity_at(pipeline, "proposal")

    opp.win(pipeline, Decimal("5000"), "C-9", None, None, LATER, "rep-1")
    assert opp.status == "won"

    at_negotiation = opportunity_at(pipeline, "negotiation")
    with pytest.raises(StageRuleBroken):
        at_negotiation.win(pipeline, Decimal("5000"), "C-9", None, None, LATER, "rep-1")


def test_a_contract_that_ends_before_it_starts_is_refused() -> None:
    pipeline = RULES.pipeline("new")
    opp = opportunity_at(pipeline, "signing")

    with pytest.raises(InvalidValue) as refused:
        opp.win(pipeline, Decimal("1"), "C-1", T0.date(), T0.date(), LATER, "rep-1")

    assert refused.value.field == "contract_end_on"
    assert opp.pending_events == []


def test_lose_with_a_reason_not_in_the_rules_file_is_refused() -> None:
    opp = opportunity_at(RULES.pipeline("new"), "proposal")

    with pytest.raises(InvalidValue) as refused:
        opp.lose(RULES, "bad_weather", None, LATER, "rep-1")

    assert refused.value.field == "reason"
    assert refused.value.facts == {"field": "reason"}
    assert (opp.pending_events, opp.status) == ([], "open")


@pytest.mark.parametrize("reason", ["price", "competitor", "no_budget", "other"])
def test_lose_with_a_listed_reason_is_recorded(reason: str) -> None:
    opp = opportunity_at(RULES.pipeline("new"), "proposal")

    opp.lose(RULES, reason, "RivalSoft", LATER, "rep-1")

    (lost,) = recorded(opp)
    assert (type(lost).__name__, lost.reason, lost.stage, lost.competitor) == (
        "OpportunityLost",
        reason,
        "proposal",
        "RivalSoft",
    )


@pytest.mark.parametrize("how", ["advance", "revert"])
@pytest.mark.parametrize(
    ("pipeline_id", "to_stage"),
    [("new", "closing"), ("new", ""), ("renewal", "requirements")],
)
def test_an_unknown_to_stage_is_refused_naming_the_field(
    how: str, pipeline_id: str, to_stage: str
) -> None:
    pipeline = RULES.pipeline(pipeline_id)
    opp = opportunity_at(pipeline, "proposal")

    with pytest.raises(InvalidValue) as refused:
        move(opp, pipeline, how, to_stage)

    assert refused.value.field == "to_stage"
    assert (opp.pending_events, opp.stage) == ([], "proposal")


def test_pipeline_for_chooses_the_tier_pipeline_and_falls_back_to_the_type() -> None:
    rules = TIERED_RULES

    assert rules.pipeline_for("new", "SMB").id == "new_smb"
    assert rules.pipeline_for("new", "SMB").stage_ids == ("initial_contact", "signing")
    assert rules.pipeline_for("new", "KA").id == "new"
    assert rules.pipeline_for("renewal", "SMB").id == "renewal"


def test_a_short_tier_pipeline_is_advanced_without_skipping() -> None:
    rules = TIERED_RULES
    pipeline = rules.pipeline_for("new", "SMB")
    opp = opportunity_at(pipeline, "initial_contact")

    opp.advance(pipeline, "signing", "rep", LATER, "rep-1")

    assert recorded(opp)[0].skipped == []
    assert opp.pipeline_id == "new_smb"
