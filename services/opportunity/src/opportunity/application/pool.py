"""The pool rules at work (SPEC §8.3): a claim or an assignment checked and written in the new
owner's ledger, a reclaimed opportunity redistributed, an owner's standing.

What an owner holds comes from `Holdings` (the listing, caught up to every committed event)
overlaid with what the unit of work has changed. Every claim and pool-checked assignment
writes the owner's ledger, read BEFORE the count: a command the count missed has written the
ledger since, so this one's save conflicts and it runs again, counting it (decision 0037)."""

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from contracts.customer_rules import Pool, PoolRule, Redistribute
from opportunity.application.unit_of_work import BatchingApplication, Context, UnitOfWork
from opportunity.domain import access
from opportunity.domain.lifecycle import check_allowed
from opportunity.domain.opportunity import Opportunity
from opportunity.domain.pool_ledger import PoolCursor, PoolLedger
from opportunity.domain.pool_rules import (
    HELD_STATUSES,
    Facts,
    Held,
    check_capacity,
    check_claim,
    cooling_until,
    held_under,
    is_full,
    least_loaded,
    round_robin,
)

# The reps of a team (principal ids), from the auth file.
RepsOf = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Reclaimed:
    """A pooled opportunity reclaimed from an owner, and when it was last."""

    opportunity_id: str
    facts: Facts
    at: datetime


class Holdings(Protocol):
    """Where the pool rules count owners' opportunities, every committed event included."""

    def held_by(self, owner_ids: Collection[str]) -> list[Held]:
        """The active opportunities (open, paused, deferred) the owners hold."""
        ...

    def reclaimed_from(self, owner_id: str) -> list[Reclaimed]:
        """The pooled opportunities reclaimed from the owner."""
        ...


@dataclass(frozen=True)
class RuleStanding:
    rule_id: str
    held: int
    max_held: int | None
    claims_today: int
    claim_limit_per_day: int | None


@dataclass(frozen=True)
class Standing:
    """An owner's figures under each pool rule, and what the owner may not claim back yet
    (opportunity id, until when), soonest first."""

    owner_id: str
    rules: list[RuleStanding]
    cooling: list[tuple[str, datetime]]


def facts_of(opportunity: Opportunity) -> Facts:
    customer = opportunity.customer
    return Facts(customer["tier"], customer["ownership"], opportunity.type)


class PoolKeeper:
    def __init__(
        self, app: BatchingApplication, pool: Pool, zone: ZoneInfo, reps_of: RepsOf
    ) -> None:
        self._app, self._pool, self._zone, self._reps_of = app, pool, zone, reps_of
        self._holdings: Holdings | None = None

    def count_in(self, holdings: Holdings) -> None:
        """Where owners' opportunities are counted: wired after the application is built, as
        the listing reads the application's store."""
        self._holdings = holdings

    def claim(self, uow: UnitOfWork, opportunity: Opportunity, ctx: Context) -> None:
        """The principal takes a pooled opportunity, within the rule's claims a day, max_held
        and the previous owner's cooldown."""
        o, at, owner = opportunity, ctx.at(opportunity), ctx.principal.id
        check_allowed("claim", o.status, o.last_event_at, at)  # a status refusal comes first
        rule = facts_of(o).rule(self._pool)
        ledger = self._ledger(uow, owner) if rule is not None else None
        if rule is not None:
            day = at.astimezone(self._zone).date()
            check_claim(
                rule,
                held=held_under(self._pool, rule, self._held(uow, [owner]), str(o.id)),
                claims_today=ledger.claims_on(rule.id, day, self._zone) if ledger else 0,
                cooling=cooling_until(rule, dict(o.reclaimed_from).get(owner), self._zone),
                at=at,
            )
        o.claim(owner, at, owner)
        if rule is not None:
            self._record(uow, owner, ledger, o, rule, claimed=True, override=False)

    def assign(  # noqa: PLR0913 - what an assignment names
        self,
        uow: UnitOfWork,
        opportunity: Opportunity,
        owner_id: str,
        team_id: str | None,
        override: bool,
        ctx: Context,
    ) -> None:
        """Give the opportunity to `owner_id` within the rule's max_held; an admin or manager
        may go over it with `override`, which the event records when it was needed."""
        o, at = opportunity, ctx.at(opportunity)
        if override:
            access.check_override(ctx.principal)
        check_allowed("assign", o.status, o.last_event_at, at)
        rule = facts_of(o).rule(self._pool)
        ledger = self._ledger(uow, owner_id) if rule is not None else None
        over = False
        if rule is not None:
            held = held_under(self._pool, rule, self._held(uow, [owner_id]), str(o.id))
            if not override:
                check_capacity(rule, held)
            over = is_full(rule, held)
        o.assign(owner_id, at, ctx.principal.id, team_id=team_id, override=over)
        if rule is not None:
            self._record(uow, owner_id, ledger, o, rule, claimed=False, override=over)

    def reclaim(  # noqa: PLR0913 - a reclaim by a rule names the rule and its command
        self,
        uow: UnitOfWork,
        opportunity: Opportunity,
        reason: str,
        rule_id: str | None,
        command_id: str | None,
        ctx: Context,
    ) -> None:
        """Reclaim into the pool; a rule that redistributes gives it to a rep of the team at
        once, in the same unit of work (no rep eligible: it stays pooled)."""
        o, at, actor = opportunity, ctx.at(opportunity), ctx.principal.id
        previous = o.owner_id
        o.reclaim(reason, rule_id, command_id, at, actor)
        rule = facts_of(o).rule(self._pool)
        if rule is None or rule.redistribute is Redistribute.POOL or o.team_id is None:
            return
        reps = sorted(self._reps_of(o.team_id))
        if not reps:
            return
        ledgers = {rep: self._ledger(uow, rep) for rep in reps}
        chosen = self._redistribute(uow, o, o.team_id, rule, previous, reps)
        if chosen is not None:
            o.assign(chosen, at, actor, rule_id=rule.id)
            self._record(uow, chosen, ledgers[chosen], o, rule, claimed=False, override=False)

    def standing(self, owner_id: str, now: datetime) -> Standing:
        holdings = self._counted()
        held = holdings.held_by([owner_id])
        ledger = UnitOfWork(self._app).find(PoolLedger.create_id(owner_id), PoolLedger)
        day = now.astimezone(self._zone).date()
        rules = [
            RuleStanding(
                rule_id=rule.id,
                held=held_under(self._pool, rule, held),
                max_held=rule.max_held,
                claims_today=ledger.claims_on(rule.id, day, self._zone) if ledger else 0,
                claim_limit_per_day=rule.claim_limit_per_day,
            )
            for rule in self._pool.rules
        ]
        cooling = []
        for reclaimed in holdings.reclaimed_from(owner_id):
            rule = reclaimed.facts.rule(self._pool)
            until = cooling_until(rule, reclaimed.at, self._zone) if rule else None
            if until is not None and until > now:
                cooling.append((reclaimed.opportunity_id, until))
        return Standing(owner_id, rules, sorted(cooling, key=lambda c: (c[1], c[0])))

    def _redistribute(  # noqa: PLR0913
        self,
        uow: UnitOfWork,
        opportunity: Opportunity,
        team_id: str,
        rule: PoolRule,
        previous: str | None,
        reps: list[str],
    ) -> str | None:
        """The rep of the team the rule gives the reclaimed opportunity to, if any."""
        held = self._held(uow, reps)
        full = {
            rep
            for rep in reps
            if is_full(rule, held_under(self._pool, rule, [h for h in held if h.owner_id == rep]))
        }
        if rule.redistribute is Redistribute.LEAST_LOADED:
            return least_loaded(reps, previous, Counter(h.owner_id for h in held), full)
        cursor_id = PoolCursor.create_id(rule.id, team_id)
        cursor = uow.find(cursor_id, PoolCursor)
        chosen = round_robin(reps, cursor.last_owner_id if cursor else None, previous, full)
        if chosen is not None:
            if cursor is None:
                cursor = PoolCursor(rule_id=rule.id, team_id=team_id)
                uow.add(cursor)
            cursor.gave(chosen, str(opportunity.id))
        return chosen

    def _held(self, uow: UnitOfWork, owner_ids: Collection[str]) -> list[Held]:
        """What the owners hold: every committed event counted, then this unit of work's
        changes (an opportunity it changed counts as it is now)."""
        changed = {
            str(a.id): a for a in uow.aggregates if isinstance(a, Opportunity) and a.pending_events
        }
        held = [h for h in self._counted().held_by(owner_ids) if h.opportunity_id not in changed]
        held += [
            Held(oid, o.owner_id, facts_of(o))
            for oid, o in changed.items()
            if o.owner_id is not None and o.owner_id in owner_ids and o.status in HELD_STATUSES
        ]
        return held

    @staticmethod
    def _ledger(uow: UnitOfWork, owner_id: str) -> PoolLedger | None:
        """The owner's ledger as this unit of work reads it: to be read before the owner's
        opportunities are counted, and written by `_record` at the version read."""
        return uow.find(PoolLedger.create_id(owner_id), PoolLedger)

    def _record(  # noqa: PLR0913
        self,
        uow: UnitOfWork,
        owner_id: str,
        ledger: PoolLedger | None,
        opportunity: Opportunity,
        rule: PoolRule,
        claimed: bool,
        override: bool,
    ) -> None:
        """Write the claim or assignment in the owner's ledger as read before the count; none
        then: it is opened (and conflicts with one opened since)."""
        if ledger is None:
            ledger = PoolLedger(owner_id=owner_id)
            uow.add(ledger)
        ledger.took(str(opportunity.id), rule.id, claimed, override, opportunity.last_event_at)

    def _counted(self) -> Holdings:
        if self._holdings is None:
            raise RuntimeError("the pool rules count owners' opportunities: call count_in first")
        return self._holdings
