"""Random claims, assignments, reclaims and closes under pool rules (SPEC §8.3), against a small
model of the rules: the application accepts and refuses exactly what the model does; in the
events it records, no owner ever holds more than max_held under a rule without an override,
and no one claims more a day under a rule than its limit allows."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from contracts.customer_rules import Pool
from opportunity.application.app import OpportunityApp
from opportunity.domain.errors import CommandNotAllowed, PoolRuleBroken
from services.opportunity.tests.pools import as_, create, pool_app

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
TEAM = ("rep-1", "rep-2", "rep-3")  # east: a reclaimed SMB one may go to any of them
CLAIMERS = ("rep-1", "rep-2")
# Small figures, so that a few dozen steps reach them: KA one claim a day, two held, a day's
# cooldown; SMB one held, given to the least loaded rep at a reclaim.
TIGHT = Pool.model_validate(
    {
        "rules": [
            {
                "id": "ka",
                "match": {"tier": "KA"},
                "claim_limit_per_day": 1,
                "max_held": 2,
                "previous_owner_cooldown": "P1D",
            },
            {"id": "smb", "match": {"tier": "SMB"}, "max_held": 1, "redistribute": "least_loaded"},
        ]
    }
)
RULES = {r.id: r for r in TIGHT.rules}
RULE_OF_TIER = {"KA": "ka", "SMB": "smb"}
HELD = frozenset({"open", "paused", "deferred"})


@dataclass
class Deal:
    tier: str
    owner: str | None = None
    status: str = "pooled"
    reclaimed_from: dict[str, datetime] = field(default_factory=dict)

    @property
    def rule(self) -> str:
        return RULE_OF_TIER[self.tier]


@dataclass
class Model:
    """What the pool rules say, written out apart from the code under test."""

    deals: dict[UUID, Deal] = field(default_factory=dict)
    claims: list[tuple[str, str, date]] = field(default_factory=list)

    def held(self, owner: str, rule: str, leaving_out: UUID | None = None) -> int:
        return sum(
            1
            for oid, d in self.deals.items()
            if oid != leaving_out and d.owner == owner and d.status in HELD and d.rule == rule
        )

    def claim_refusal(self, oid: UUID, rep: str, at: datetime) -> str | None:
        deal = self.deals[oid]
        limits = RULES[deal.rule]
        if deal.status != "pooled":
            return "status"
        reclaimed = deal.reclaimed_from.get(rep)
        if limits.previous_owner_cooldown and reclaimed and at < reclaimed + timedelta(days=1):
            return "pool.previous_owner_cooldown"
        today = at.astimezone(SHANGHAI).date()
        claimed = sum(1 for who, r, day in self.claims if (who, r, day) == (rep, deal.rule, today))
        if limits.claim_limit_per_day is not None and claimed >= limits.claim_limit_per_day:
            return "pool.claim_limit_per_day"
        if limits.max_held is not None and self.held(rep, deal.rule, oid) >= limits.max_held:
            return "pool.max_held"
        return None

    def redistributed_to(self, oid: UUID, previous: str | None) -> str | None:
        deal = self.deals[oid]
        if deal.rule != "smb":  # the one rule that redistributes: least loaded
            return None
        limit = RULES["smb"].max_held or 0
        eligible = [r for r in TEAM if r != previous and self.held(r, "smb") < limit]
        load = Counter(d.owner for d in self.deals.values() if d.status in HELD)
        return min(eligible, key=lambda r: (load[r], r), default=None)


class PoolRules(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app: OpportunityApp = pool_app(TIGHT)
        self.model = Model()
        self.now = T0
        self.outcomes: Counter[str] = OUTCOMES

    def attempt(self, run: Any, expected: str | None) -> bool:
        """Run the command; it must be refused exactly as `expected` says (None: accepted)."""
        try:
            run()
        except (PoolRuleBroken, CommandNotAllowed) as refused:
            kind = refused.facts["rule"] if isinstance(refused, PoolRuleBroken) else "status"
            assert kind == expected, (kind, expected)
            self.outcomes[str(kind)] += 1
            return False
        assert expected is None, f"accepted, but the model refuses: {expected}"
        self.outcomes["accepted"] += 1
        return True

    def deal(self, n: int, status: str | None = None) -> UUID | None:
        """The n-th deal (round the end); with `status`, of those in it if any are."""
        deals = self.model.deals
        wanted = [oid for oid, d in deals.items() if d.status == status]
        candidates = wanted or list(deals)
        return candidates[n % len(candidates)] if candidates else None

    @initialize()
    def a_pool_to_claim_from(self) -> None:
        for tier in ("KA", "KA", "KA", "KA", "SMB", "SMB"):
            self.create_pooled(tier)

    @rule(tier=st.sampled_from(["KA", "KA", "SMB"]))
    def create_pooled(self, tier: str) -> None:
        oid = create(self.app, self.now, tier=tier)
        self.model.deals[oid] = Deal(tier)

    @rule(hours=st.sampled_from([1, 1, 5, 16, 24]))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule(n=st.integers(0, 30), rep=st.sampled_from(CLAIMERS), pooled=st.booleans())
    def claim(self, n: int, rep: str, pooled: bool) -> None:
        oid = self.deal(n, "pooled" if pooled else None)
        if oid is None:
            return
        expected = self.model.claim_refusal(oid, rep, self.now)
        at = self.now
        if self.attempt(
            lambda: self.app.run(lambda u: self.app.claim(u, oid, as_(rep, at))), expected
        ):
            deal = self.model.deals[oid]
            deal.owner, deal.status = rep, "open"
            self.model.claims.append((rep, deal.rule, at.astimezone(SHANGHAI).date()))

    @rule(n=st.integers(0, 30), rep=st.sampled_from(CLAIMERS), override=st.booleans())
    def assign(self, n: int, rep: str, override: bool) -> None:
        oid = self.deal(n, "pooled")
        if oid is None:
            return
        deal = self.model.deals[oid]
        limit = RULES[deal.rule].max_held
        full = limit is not None and self.model.held(rep, deal.rule, oid) >= limit
        expected = (
            "status"
            if deal.status not in HELD | {"pooled"}
            else "pool.max_held"
            if full and not override
            else None
        )
        at = self.now
        run = lambda: self.app.run(  # noqa: E731
            lambda u: self.app.assign(u, oid, rep, as_("manager-east", at), override)
        )
        if self.attempt(run, expected):
            deal.owner = rep
            deal.status = "open" if deal.status == "pooled" else deal.status
            assert self.last_event(oid).override is (full and override)

    @rule(n=st.integers(0, 30))
    def reclaim(self, n: int) -> None:
        oid = self.deal(n, "open")
        if oid is None:
            return
        deal = self.model.deals[oid]
        expected = None if deal.status == "open" else "status"
        at = self.now
        previous = deal.owner
        run = lambda: self.app.run(  # noqa: E731
            lambda u: self.app.reclaim(u, oid, "stale", as_("service", at))
        )
        if self.attempt(run, expected):
            assert previous is not None
            deal.reclaimed_from[previous] = at
            deal.owner, deal.status = None, "pooled"
            chosen = self.model.redistributed_to(oid, previous)
            if chosen is not None:
                deal.owner, deal.status = chosen, "open"

    @rule(n=st.integers(0, 30))
    def void(self, n: int) -> None:
        oid = self.deal(n)
        if oid is None:
            return
        deal = self.model.deals[oid]
        expected = None if deal.status in HELD | {"pooled"} else "status"
        at = self.now
        run = lambda: self.app.run(  # noqa: E731
            lambda u: self.app.void(u, oid, "duplicate", as_("manager-east", at))
        )
        if self.attempt(run, expected):
            deal.status = "voided"

    def last_event(self, oid: UUID) -> Any:
        return list(self.app.events.get(oid))[-1]

    @invariant()
    def agrees_with_the_model(self) -> None:
        for oid, deal in self.model.deals.items():
            found = self.app.opportunity(oid)
            assert (found.owner_id, str(found.status)) == (deal.owner, deal.status)

    @invariant()
    def nobody_holds_over_max_held_without_an_override(self) -> None:
        held: Counter[tuple[str, str]] = Counter()
        overridden: set[tuple[str, str]] = set()
        for oid, deal in self.model.deals.items():
            found = self.app.opportunity(oid)
            if found.owner_id is None or str(found.status) not in HELD:
                continue
            key = (found.owner_id, deal.rule)
            held[key] += 1
            assigned = [
                e for e in self.app.events.get(oid) if type(e).__name__ == "OpportunityAssigned"
            ]
            if assigned[-1].override:
                overridden.add(key)
        for (owner, rule_id), count in held.items():
            limit = RULES[rule_id].max_held
            assert limit is None or count <= limit or (owner, rule_id) in overridden

    @invariant()
    def claims_a_day_stay_within_the_limit(self) -> None:
        claims: Counter[tuple[str, str, date]] = Counter()
        for oid, deal in self.model.deals.items():
            for e in self.app.events.get(oid):
                if type(e).__name__ == "OpportunityAssigned" and e.claimed:
                    claims[(e.owner_id, deal.rule, e.at.astimezone(SHANGHAI).date())] += 1
        for (_, rule_id, _), count in claims.items():
            limit = RULES[rule_id].claim_limit_per_day
            assert limit is None or count <= limit


OUTCOMES: Counter[str] = Counter()
SETTINGS = settings(
    max_examples=40, stateful_step_count=40, derandomize=True, database=None, deadline=None
)


def test_the_pool_rules_hold_whatever_the_order_of_commands() -> None:
    OUTCOMES.clear()

    run_state_machine_as_test(PoolRules, settings=SETTINGS)

    # Not vacuous: every rule refused something, and much was accepted.
    assert {
        "accepted",
        "status",
        "pool.max_held",
        "pool.claim_limit_per_day",
        "pool.previous_owner_cooldown",
    } <= set(OUTCOMES), OUTCOMES
