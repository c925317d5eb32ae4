"""The pool rules (SPEC §8.3, 公海规则) as decisions without I/O: which rule governs an
opportunity, what an owner holds under it, whether a claim or an assignment may take one more,
when the owner it was reclaimed from may claim it back, and which rep of the team a reclaimed
one goes to."""

from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from contracts.customer_rules import Pool, PoolRule
from contracts.opportunity import Status
from contracts.workdays import later
from opportunity.domain.errors import PoolRuleBroken

# What an owner holds (客户库容): the active opportunities, pooled ones having no owner.
HELD_STATUSES = frozenset({Status.OPEN, Status.PAUSED, Status.DEFERRED})


@dataclass(frozen=True)
class Facts:
    """What chooses an opportunity's pool rule: the customer's tier and ownership, the type."""

    tier: str
    ownership: str
    type: str

    def rule(self, pool: Pool) -> PoolRule | None:
        return pool.rule_for(self.tier, self.ownership, self.type)


@dataclass(frozen=True)
class Held:
    """An active opportunity and its owner."""

    opportunity_id: str
    owner_id: str
    facts: Facts


def held_under(pool: Pool, rule: PoolRule, held: Iterable[Held], leaving_out: str = "") -> int:
    """How many of `held` the rule governs, `leaving_out` one opportunity (the one being
    claimed or assigned, which counts once it is taken)."""
    return sum(
        1
        for h in held
        if h.opportunity_id != leaving_out
        and (governing := h.facts.rule(pool)) is not None
        and governing.id == rule.id
    )


def is_full(rule: PoolRule, held: int) -> bool:
    """One more would take the owner over the rule's max_held."""
    return rule.max_held is not None and held >= rule.max_held


def cooling_until(rule: PoolRule, reclaimed_at: datetime | None, zone: ZoneInfo) -> datetime | None:
    """Until when the owner it was reclaimed from (at `reclaimed_at`) may not claim it back."""
    if rule.previous_owner_cooldown is None or reclaimed_at is None:
        return None
    return later(reclaimed_at, rule.previous_owner_cooldown, zone).astimezone(UTC)


def check_capacity(rule: PoolRule, held: int) -> None:
    """Refuse one more opportunity to an owner who holds `held` under the rule already."""
    if is_full(rule, held):
        raise PoolRuleBroken(
            "pool.max_held",
            rule.id,
            f"the owner holds {held} active opportunities under pool rule {rule.id!r}, "
            f"which allows {rule.max_held}",
            limit=rule.max_held,
            count=held,
        )


def check_claim(
    rule: PoolRule, *, held: int, claims_today: int, cooling: datetime | None, at: datetime
) -> None:
    """Refuse a claim at `at` by an owner who holds `held` and claimed `claims_today` under the
    rule, and who may not claim this one back before `cooling` (if set)."""
    if cooling is not None and at < cooling:
        raise PoolRuleBroken(
            "pool.previous_owner_cooldown",
            rule.id,
            f"it was reclaimed from you; pool rule {rule.id!r} lets you claim it back from "
            f"{cooling.isoformat()}",
            until=cooling.isoformat(),
        )
    limit = rule.claim_limit_per_day
    if limit is not None and claims_today >= limit:
        raise PoolRuleBroken(
            "pool.claim_limit_per_day",
            rule.id,
            f"you claimed {claims_today} opportunities under pool rule {rule.id!r} today, "
            f"which allows {limit} a day",
            limit=limit,
            count=claims_today,
        )
    check_capacity(rule, held)


def least_loaded(
    reps: Collection[str],
    previous_owner: str | None,
    loads: Mapping[str, int],
    full: Collection[str],
) -> str | None:
    """The rep with the fewest active opportunities (ties: the lowest principal id), never
    the previous owner nor a rep at the rule's max_held."""
    eligible = [r for r in reps if r != previous_owner and r not in full]
    return min(eligible, key=lambda r: (loads.get(r, 0), r), default=None)


def round_robin(
    reps: Collection[str], after: str | None, previous_owner: str | None, full: Collection[str]
) -> str | None:
    """The next rep in principal-id order after `after` (the last one the rule gave to),
    around the end, skipping the previous owner and reps at the rule's max_held."""
    ordered = sorted(set(reps))
    start = 0 if after is None else bisect_right(ordered, after)
    turn = ordered[start:] + ordered[:start]
    return next((r for r in turn if r != previous_owner and r not in full), None)
