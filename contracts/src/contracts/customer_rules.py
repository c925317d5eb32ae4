"""The rules-file sections about customers and the pool (SPEC §8): `classification` (facts of
a customer → its tier), `type_rules` (a create's type must fit the customer's history) and
`pool` (公海规则: claim limits, capacity, the previous owner's cooldown, redistribution)."""

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.customer import GivenCustomer, Ownership, Tier
from contracts.durations import RuleSpan
from contracts.opportunity import OpportunityType


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Between(_Rule):
    """A figure from `min` (inclusive) to `max` (inclusive); an unknown figure never matches."""

    min: Decimal | None = None
    max: Decimal | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Between":
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError("max must not be below min")
        return self

    def holds(self, value: Decimal | int | None) -> bool:
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class When(_Rule):
    """Facts of the customer a classification rule asks for; every key given must hold (a
    list: any of its values), a missing key holds for anyone."""

    industry: tuple[str, ...] | None = None
    ownership: tuple[Ownership, ...] | None = None
    region: tuple[str, ...] | None = None
    registered_capital: Between | None = None
    employees: Between | None = None
    annual_revenue: Between | None = None

    def holds(self, customer: GivenCustomer) -> bool:
        listed = (
            (self.industry, customer.industry),
            (self.ownership, customer.ownership),
            (self.region, customer.region),
        )
        figures = (
            (self.registered_capital, customer.registered_capital),
            (self.employees, customer.employees),
            (self.annual_revenue, customer.annual_revenue),
        )
        return all(want is None or have in want for want, have in listed) and all(
            want is None or want.holds(have) for want, have in figures
        )


class ClassificationRule(_Rule):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=100)
    when: When = Field(default_factory=When)
    tier: Tier


class Classification(_Rule):
    """Ordered rules, the first that holds gives the tier."""

    rules: tuple[ClassificationRule, ...] = ()

    @model_validator(mode="after")
    def _ids_unique(self) -> "Classification":
        ids = [r.id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"classification rule ids repeat: {sorted(set(ids))}")
        if "manual" in ids:
            raise ValueError("'manual' names a tier given by hand, not a rule")
        return self

    def first_holding(self, customer: GivenCustomer) -> ClassificationRule | None:
        return next((rule for rule in self.rules if rule.when.holds(customer)), None)


class TypeRules(_Rule):
    enforce: bool = Field(
        default=True,
        description="refuse an HTTP create whose type contradicts the customer's history",
    )


class Redistribute(StrEnum):
    POOL = "pool"
    LEAST_LOADED = "least_loaded"
    ROUND_ROBIN = "round_robin"


class PoolMatch(_Rule):
    """Facts of an opportunity a pool rule applies to; a missing key matches anything."""

    tier: Tier | None = None
    ownership: Ownership | None = None
    type: OpportunityType | None = None

    @property
    def specificity(self) -> int:
        return sum(v is not None for v in (self.tier, self.ownership, self.type))

    def matches(self, tier: str, ownership: str, type_: str) -> bool:
        return all(
            want is None or want == have
            for want, have in ((self.tier, tier), (self.ownership, ownership), (self.type, type_))
        )


class PoolRule(_Rule):
    id: str = Field(min_length=1, max_length=100)
    match: PoolMatch = Field(default_factory=PoolMatch)
    claim_limit_per_day: int | None = Field(default=None, ge=0)
    max_held: int | None = Field(default=None, ge=0)
    previous_owner_cooldown: RuleSpan | None = None
    redistribute: Redistribute = Redistribute.POOL


def _shipped_pool_rules() -> tuple[PoolRule, ...]:
    shipped: list[dict[str, Any]] = [
        {
            "id": "ka-pool",
            "match": {"tier": "KA"},
            "claim_limit_per_day": 5,
            "max_held": 50,
            "previous_owner_cooldown": "P30D",
        },
        {
            "id": "smb-pool",
            "match": {"tier": "SMB"},
            "claim_limit_per_day": 10,
            "max_held": 200,
            "previous_owner_cooldown": "P7D",
        },
    ]
    return tuple(PoolRule.model_validate(rule) for rule in shipped)


class Pool(_Rule):
    rules: tuple[PoolRule, ...] = Field(default_factory=_shipped_pool_rules)

    @model_validator(mode="after")
    def _ids_unique(self) -> "Pool":
        ids = [r.id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"pool rule ids repeat: {sorted(set(ids))}")
        return self

    def rule_for(self, tier: str, ownership: str, type_: str) -> PoolRule | None:
        """The most specific matching rule; on a tie, the one written first."""
        best: PoolRule | None = None
        for rule in self.rules:
            if rule.match.matches(tier, ownership, type_) and (
                best is None or rule.match.specificity > best.match.specificity
            ):
                best = rule
        return best
