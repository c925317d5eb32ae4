"""Type rules (SPEC §8.2): a create's type against the customer's won contracts, and the type a
create without one gets."""

from datetime import date

import pytest

from contracts.customer_rules import TypeRules
from opportunity.domain.customer_account import CustomerAccount
from opportunity.domain.errors import TypeRuleBroken
from opportunity.domain.type_rules import History, type_for

ENFORCED, RELAXED = TypeRules(), TypeRules(enforce=False)
TODAY = date(2026, 6, 1)

NEVER_WON = History(won=False, running=False)
RUNNING = History(won=True, running=True)
ENDED = History(won=True, running=False)


def account(*ends: date | None) -> CustomerAccount:
    account = CustomerAccount(uscc="91350100M000100Y43")
    for n, end in enumerate(ends):
        account.record_contract(f"won-{n}", end)
    return account


def test_the_history_of_a_customer_without_an_account_is_never_won() -> None:
    assert History.of(None, TODAY) == NEVER_WON


@pytest.mark.parametrize(
    ("ends", "history"),
    [
        ((date(2026, 6, 1),), RUNNING),  # the last day still runs
        ((date(2026, 5, 31),), ENDED),
        ((None,), RUNNING),  # a contract without an end runs
        ((date(2025, 1, 1), date(2027, 1, 1)), RUNNING),
    ],
)
def test_the_history_of_an_account_on_a_day(
    ends: tuple[date | None, ...], history: History
) -> None:
    assert History.of(account(*ends), TODAY) == history


def test_new_while_a_contract_runs_is_refused_naming_type_and_the_rule() -> None:
    with pytest.raises(TypeRuleBroken) as refused:
        type_for("new", RUNNING, ENFORCED)

    assert refused.value.field == "type"
    assert refused.value.facts == {"field": "type", "rule": "type.running_contract"}
    assert "resale or a renewal" in refused.value.message


@pytest.mark.parametrize("type_", ["resale", "renewal"])
def test_resale_or_renewal_for_a_customer_that_never_won_is_refused(type_: str) -> None:
    with pytest.raises(TypeRuleBroken) as refused:
        type_for(type_, NEVER_WON, ENFORCED)

    assert refused.value.facts == {"field": "type", "rule": "type.no_contract"}
    assert type_ in refused.value.message


@pytest.mark.parametrize(
    ("type_", "history"),
    [
        ("new", NEVER_WON),
        ("new", ENDED),  # the contract ended: a new deal may start
        ("resale", RUNNING),
        ("resale", ENDED),
        ("renewal", RUNNING),
        ("renewal", ENDED),
    ],
)
def test_a_type_that_fits_the_history_is_kept(type_: str, history: History) -> None:
    assert type_for(type_, history, ENFORCED) == type_


@pytest.mark.parametrize(
    ("type_", "history"), [("new", RUNNING), ("resale", NEVER_WON), ("renewal", NEVER_WON)]
)
def test_without_enforce_a_contradicting_type_is_kept(type_: str, history: History) -> None:
    assert type_for(type_, history, RELAXED) == type_


@pytest.mark.parametrize("rules", [ENFORCED, RELAXED])
@pytest.mark.parametrize(
    ("history", "type_"), [(NEVER_WON, "new"), (ENDED, "new"), (RUNNING, "resale")]
)
def test_a_create_without_a_type_gets_the_one_the_history_gives(
    rules: TypeRules, history: History, type_: str
) -> None:
    assert type_for(None, history, rules) == type_
