"""Classification (SPEC §8.2): the first rule that holds gives the tier; a tier given by hand is
`manual`; no tier and no rule → refused naming `customer.tier`."""

from decimal import Decimal
from typing import Any

import pytest

from contracts.customer import GivenCustomer
from contracts.customer_rules import Classification
from contracts.rules import load_rulebook
from opportunity.domain.classification import classify
from opportunity.domain.errors import InvalidValue
from tests.support.principals import new_uscc

SHIPPED = load_rulebook().classification


def given(**facts: Any) -> GivenCustomer:
    return GivenCustomer.model_validate(
        {"uscc": new_uscc(), "name": "ACME", "ownership": "PRIVATE", **facts}
    )


def rules(*rules: dict[str, Any]) -> Classification:
    return Classification.model_validate({"rules": list(rules)})


def test_a_given_tier_is_kept_and_classified_by_hand() -> None:
    customer = classify(given(tier="SMB", employees=5000), SHIPPED)

    assert (customer.tier, customer.classified_by) == ("SMB", "manual")


def test_the_first_rule_that_holds_wins() -> None:
    # Both `ka-headcount` and `smb-revenue` hold; `ka-headcount` is written first.
    customer = classify(given(employees=2500, annual_revenue="5000000"), SHIPPED)

    assert (customer.tier, customer.classified_by) == ("KA", "ka-headcount")


def test_the_classified_customer_keeps_every_fact_given() -> None:
    sent = given(industry="retail", region="华东", employees=10, registered_capital="1000000.50")

    customer = classify(sent, SHIPPED)

    assert customer.model_dump(exclude={"tier", "classified_by"}) == sent.model_dump(
        exclude={"tier"}
    )
    assert (customer.tier, customer.classified_by) == ("SMB", "smb-headcount")


@pytest.mark.parametrize(
    ("employees", "tier"),
    [(99, None), (100, "KA"), (150, "KA"), (200, "KA"), (201, None)],
)
def test_a_range_holds_at_both_ends_and_not_beyond(employees: int, tier: str | None) -> None:
    only = rules({"id": "mid", "when": {"employees": {"min": 100, "max": 200}}, "tier": "KA"})

    if tier is None:
        with pytest.raises(InvalidValue):
            classify(given(employees=employees), only)
    else:
        assert classify(given(employees=employees), only).tier == tier


def test_decimal_ranges_hold_at_both_ends() -> None:
    only = rules(
        {
            "id": "capital",
            "when": {"registered_capital": {"min": "0.01", "max": "10"}},
            "tier": "SMB",
        }
    )

    for capital in ("0.01", "10", "10.00"):
        assert classify(given(registered_capital=Decimal(capital)), only).classified_by == "capital"
    for capital in ("0", "10.01"):
        with pytest.raises(InvalidValue):
            classify(given(registered_capital=Decimal(capital)), only)


def test_an_unknown_figure_never_holds_not_even_an_open_range() -> None:
    # `max` alone holds for every known figure up to it, but not for one that is unknown.
    small = rules({"id": "small", "when": {"annual_revenue": {"max": 1000}}, "tier": "SMB"})

    assert classify(given(annual_revenue=0), small).classified_by == "small"
    with pytest.raises(InvalidValue):
        classify(given(employees=3), small)


def test_a_list_holds_for_any_of_its_values_and_every_key_must_hold() -> None:
    soe_east = rules(
        {
            "id": "soe-east",
            "when": {"ownership": ["SOE", "FOREIGN"], "region": ["华东", "华南"]},
            "tier": "KA",
        },
        {"id": "rest", "tier": "SMB"},
    )

    assert classify(given(ownership="FOREIGN", region="华南"), soe_east).classified_by == "soe-east"
    assert classify(given(ownership="SOE", region="华北"), soe_east).classified_by == "rest"
    assert classify(given(ownership="PRIVATE", region="华东"), soe_east).classified_by == "rest"
    # An unknown region is in no list.
    assert classify(given(ownership="SOE"), soe_east).classified_by == "rest"


def test_an_industry_list_and_a_figure_together() -> None:
    banks = rules(
        {
            "id": "big-bank",
            "when": {"industry": ["banking"], "employees": {"min": 1000}},
            "tier": "KA",
        }
    )

    assert classify(given(industry="banking", employees=1000), banks).tier == "KA"
    with pytest.raises(InvalidValue):
        classify(given(industry="retail", employees=5000), banks)


def test_a_rule_without_when_holds_for_anyone() -> None:
    fallback = rules({"id": "everyone", "tier": "SMB"})

    assert classify(given(), fallback).classified_by == "everyone"


def test_no_tier_and_no_rule_is_refused_naming_customer_tier_and_the_facts_given() -> None:
    with pytest.raises(InvalidValue) as refused:
        classify(given(ownership="SOE", industry="retail"), SHIPPED)

    assert refused.value.field == "customer.tier"
    message = refused.value.message
    assert "no classification rule matched" in message
    assert "industry=retail" in message
    assert "ownership=SOE" in message
    assert "unknown: region, registered_capital, employees, annual_revenue" in message


def test_no_rules_at_all_refuses_every_customer_without_a_tier() -> None:
    with pytest.raises(InvalidValue, match="facts given: ownership=PRIVATE"):
        classify(given(), Classification())
