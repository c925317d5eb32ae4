"""Classification (SPEC §8.2): a customer given without a tier gets the tier of the first rule
of the rules file's `classification` that holds; a tier given by hand is `manual`."""

from typing import Any

from contracts.customer import Customer, GivenCustomer
from contracts.customer_rules import Classification
from opportunity.domain.errors import InvalidValue

MANUAL = "manual"
# The facts a classification rule may ask for, in the order a refusal lists them.
FACTS = ("industry", "ownership", "region", "registered_capital", "employees", "annual_revenue")


def classify(customer: GivenCustomer, classification: Classification) -> Customer:
    """The customer with its tier and `classified_by` (the rule's id, or `manual`); refused
    naming `customer.tier` when no tier is given and no rule holds."""
    facts: dict[str, Any] = customer.model_dump(exclude={"tier"})
    if customer.tier is not None:
        return Customer.model_validate({**facts, "tier": customer.tier, "classified_by": MANUAL})
    rule = classification.first_holding(customer)
    if rule is None:
        raise InvalidValue(
            "customer.tier",
            "no tier was given and no classification rule matched the facts given: "
            + _facts_given(customer),
        )
    return Customer.model_validate({**facts, "tier": rule.tier, "classified_by": rule.id})


def _facts_given(customer: GivenCustomer) -> str:
    given = [(name, getattr(customer, name)) for name in FACTS]
    known = ", ".join(f"{name}={value}" for name, value in given if value is not None)
    unknown = ", ".join(name for name, value in given if value is None)
    return f"{known or 'none'}" + (f" (unknown: {unknown})" if unknown else "")
