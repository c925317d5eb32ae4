"""A create before it is recorded: as the HTTP API gives it (type and tier may be left to the
rules) and as decided — the customer classified, the type checked against the customer's
history of won contracts or taken from it (SPEC §8.2)."""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from contracts.customer import Customer, GivenCustomer
from contracts.rules import Rulebook
from opportunity.application.unit_of_work import UnitOfWork
from opportunity.domain.classification import classify
from opportunity.domain.customer_account import CustomerAccount
from opportunity.domain.type_rules import History, type_for


@dataclass(frozen=True)
class NewOpportunity:
    type: str
    customer: Customer
    owner_id: str | None
    team_id: str | None
    title: str | None = None
    amount: Decimal | None = None
    currency: str = "CNY"
    expected_close_on: date | None = None
    source: str | None = None
    lead_id: str | None = None
    renewal_of: str | None = None
    id: UUID = field(default_factory=uuid4)


@dataclass(frozen=True)
class GivenOpportunity:
    """A create as the HTTP API takes it."""

    type: str | None
    customer: GivenCustomer
    owner_id: str | None
    team_id: str | None
    title: str | None = None
    amount: Decimal | None = None
    currency: str = "CNY"
    expected_close_on: date | None = None
    source: str | None = None


def customer_history(uow: UnitOfWork, uscc: str, at: datetime, zone: ZoneInfo) -> History:
    """The customer's won contracts as they stand on the day of `at` in `zone`."""
    account = uow.find(CustomerAccount.create_id(uscc), CustomerAccount)
    return History.of(account, at.astimezone(zone).date())


def decided(rules: Rulebook, history: History, given: GivenOpportunity) -> NewOpportunity:
    """The opportunity to create: refused naming `customer.tier` when no tier is given and
    no classification rule holds, naming `type` and the rule when the type contradicts the
    history (while `type_rules.enforce`)."""
    return NewOpportunity(
        customer=classify(given.customer, rules.classification),
        type=type_for(given.type, history, rules.type_rules),
        owner_id=given.owner_id,
        team_id=given.team_id,
        title=given.title,
        amount=given.amount,
        currency=given.currency,
        expected_close_on=given.expected_close_on,
        source=given.source,
    )
