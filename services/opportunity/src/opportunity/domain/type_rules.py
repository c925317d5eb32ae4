"""Type rules (SPEC §8.2): the type of an HTTP create must fit the customer's history of won
contracts; a create without a type gets the one the history gives."""

from dataclasses import dataclass
from datetime import date

from contracts.customer_rules import TypeRules
from contracts.opportunity import OpportunityType
from opportunity.domain.customer_account import CustomerAccount
from opportunity.domain.errors import TypeRuleBroken

RUNNING_CONTRACT = "type.running_contract"
NO_CONTRACT = "type.no_contract"


@dataclass(frozen=True)
class History:
    """What a customer's won contracts say on one day."""

    won: bool  # a contract was ever won
    running: bool  # a won contract runs on the day

    @classmethod
    def of(cls, account: CustomerAccount | None, on: date) -> "History":
        if account is None:
            return cls(won=False, running=False)
        return cls(won=bool(account.contracts), running=account.has_running_contract(on))


def type_for(given: str | None, history: History, rules: TypeRules) -> str:
    """The create's type: the one given (refused when `enforce` is on and it contradicts the
    history), else `resale` while a contract runs and `new` otherwise, as a lead's."""
    if given is None:
        return OpportunityType.RESALE if history.running else OpportunityType.NEW
    if rules.enforce:
        _check(given, history)
    return given


def _check(given: str, history: History) -> None:
    if given == OpportunityType.NEW and history.running:
        raise TypeRuleBroken(
            RUNNING_CONTRACT,
            "the customer has a running contract: its next opportunity is a resale or a renewal",
        )
    if given in (OpportunityType.RESALE, OpportunityType.RENEWAL) and not history.won:
        raise TypeRuleBroken(
            NO_CONTRACT, f"the customer never won a contract: a {given} needs one; it is new"
        )
