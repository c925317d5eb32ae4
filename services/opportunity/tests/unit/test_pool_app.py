"""The pool rules in the application (SPEC §8.3): claims, assignments and reclaims checked
against what owners hold and claimed, refusals recording nothing, redistribution at a reclaim
in the same unit of work, and an owner's standing."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from chassis.auth import Forbidden
from contracts.customer_rules import Pool
from opportunity.application.app import OpportunityApp
from opportunity.application.unit_of_work import UnitOfWork
from opportunity.domain.errors import CommandNotAllowed, PoolRuleBroken
from opportunity.domain.pool_ledger import PoolLedger
from opportunity.domain.pool_rules import Held
from opportunity.settings import eventsourcing_env
from services.opportunity.tests.pools import (
    SMALL,
    StoreHoldings,
    as_,
    create,
    pool_app,
    rules_with,
)

# Monday 2 November 2026, 10:00 in Shanghai.
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def claim(app: OpportunityApp, oid: UUID, who: str, at: datetime) -> Any:
    return app.run(lambda uow: app.claim(uow, oid, as_(who, at)))


def assign(
    app: OpportunityApp, oid: UUID, owner: str, at: datetime, by: str = "manager-east", **kw: Any
) -> Any:
    override = kw.get("override", False)
    return app.run(lambda uow: app.assign(uow, oid, owner, as_(by, at), override))


def reclaim(app: OpportunityApp, oid: UUID, at: datetime, by: str = "manager-east") -> Any:
    return app.run(lambda uow: app.reclaim(uow, oid, "no progress", as_(by, at)))


def refused(run: Any) -> dict[str, object]:
    with pytest.raises(PoolRuleBroken) as error:
        run()
    return dict(error.value.facts)


def events(app: OpportunityApp, oid: UUID) -> list[Any]:
    return list(app.events.get(oid))


def ledger_version(app: OpportunityApp, owner: str) -> int | None:
    found = UnitOfWork(app).find(PoolLedger.create_id(owner), PoolLedger)
    return None if found is None else found.version


# -- claims a day ----------------------------------------------------------------------------------


def test_the_claim_after_the_daily_limit_is_refused_and_records_nothing() -> None:
    app = pool_app()
    first, second, third = (create(app, T0) for _ in range(3))
    claim(app, first, "rep-1", T0 + HOUR)
    claim(app, second, "rep-1", T0 + 2 * HOUR)
    versions = (len(events(app, third)), ledger_version(app, "rep-1"))

    assert refused(lambda: claim(app, third, "rep-1", T0 + 3 * HOUR)) == {
        "rule": "pool.claim_limit_per_day",
        "rule_id": "ka",
        "limit": 2,
        "count": 2,
    }
    assert (len(events(app, third)), ledger_version(app, "rep-1")) == versions
    assert app.opportunity(third).status == "pooled"


def test_the_day_of_the_limit_is_the_calendar_day_in_shanghai() -> None:
    app = pool_app()
    late = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    oids = [create(app, T0) for _ in range(4)]
    claim(app, oids[0], "rep-1", late)
    claim(app, oids[1], "rep-1", late + 10 * timedelta(minutes=1))
    # 00:30 the next day there (still 2 November in UTC): a new day.
    claim(app, oids[2], "rep-1", late + 90 * timedelta(minutes=1))

    assert app.opportunity(oids[2]).owner_id == "rep-1"


def test_claims_count_per_rule() -> None:
    app = pool_app()
    ka = [create(app, T0) for _ in range(3)]
    smb = create(app, T0, tier="SMB")
    claim(app, ka[0], "rep-1", T0 + HOUR)
    claim(app, ka[1], "rep-1", T0 + HOUR)

    claim(app, smb, "rep-1", T0 + HOUR)  # the SMB rule has no daily limit

    assert app.opportunity(smb).owner_id == "rep-1"
    assert claim_refused_rule(app, ka[2], "rep-1", T0 + HOUR) == "pool.claim_limit_per_day"


def claim_refused_rule(app: OpportunityApp, oid: UUID, who: str, at: datetime) -> object:
    return refused(lambda: claim(app, oid, who, at))["rule"]


def test_a_claim_of_an_open_opportunity_is_refused_for_its_status_first() -> None:
    app = pool_app()
    oids = [create(app, T0) for _ in range(2)]
    for oid in oids:
        claim(app, oid, "rep-1", T0 + HOUR)
    owned = create(app, T0, owner_id="rep-2")

    with pytest.raises(CommandNotAllowed):
        claim(app, owned, "rep-1", T0 + HOUR)


# -- max_held ----------------------------------------------------------------------------------------


def test_a_claim_or_an_assignment_over_max_held_is_refused() -> None:
    app = pool_app()
    for _ in range(3):
        create(app, T0, owner_id="rep-1")
    pooled = create(app, T0)

    assert refused(lambda: claim(app, pooled, "rep-1", T0 + HOUR)) == {
        "rule": "pool.max_held",
        "rule_id": "ka",
        "limit": 3,
        "count": 3,
    }
    assert refused(lambda: assign(app, pooled, "rep-1", T0 + HOUR))["rule"] == "pool.max_held"
    assert app.opportunity(pooled).owner_id is None
    assert ledger_version(app, "rep-1") is None


def test_held_counts_paused_and_deferred_but_not_closed_ones() -> None:
    app = pool_app()
    paused, deferred, voided = (create(app, T0, owner_id="rep-1") for _ in range(3))
    app.run(lambda uow: app.pause(uow, paused, "holiday", None, as_("rep-1", T0 + HOUR)))
    revisit = (T0 + 30 * DAY).date()
    app.run(lambda uow: app.defer(uow, deferred, "budget_cycle", revisit, as_("rep-1", T0 + HOUR)))
    pooled = create(app, T0)
    assert claim_refused_rule(app, pooled, "rep-1", T0 + HOUR) == "pool.max_held"

    app.run(lambda uow: app.void(uow, voided, "duplicate", as_("manager-east", T0 + HOUR)))
    claim(app, pooled, "rep-1", T0 + 2 * HOUR)

    assert app.opportunity(pooled).owner_id == "rep-1"


def test_reassigning_to_the_owner_already_holding_it_is_no_step_over_max_held() -> None:
    app = pool_app()
    held = [create(app, T0, owner_id="rep-1") for _ in range(3)]

    assign(app, held[0], "rep-1", T0 + HOUR)

    assert app.opportunity(held[0]).owner_id == "rep-1"


def test_an_admin_or_a_manager_may_assign_over_max_held_and_the_event_says_so() -> None:
    app = pool_app()
    for _ in range(3):
        create(app, T0, owner_id="rep-2")
    over, within = create(app, T0), create(app, T0, owner_id="rep-3")

    assign(app, over, "rep-2", T0 + HOUR, override=True)
    assign(app, within, "rep-1", T0 + HOUR, by="admin", override=True)

    assert events(app, over)[-1].override is True
    assert events(app, within)[-1].override is False  # not needed: none recorded
    assert app.opportunity(over).owner_id == "rep-2"


def test_only_an_admin_or_a_manager_may_override() -> None:
    app = pool_app()
    oid = create(app, T0)
    with pytest.raises(Forbidden) as refusal:
        assign(app, oid, "rep-2", T0 + HOUR, by="service", override=True)
    assert refusal.value.rule == "role.override"
    with pytest.raises(Forbidden) as by_rep:
        assign(app, oid, "rep-2", T0 + HOUR, by="rep-1", override=True)
    assert by_rep.value.rule == "role.assign"


def test_two_claims_in_one_batch_see_each_other() -> None:
    app = pool_app()
    for _ in range(2):
        create(app, T0, owner_id="rep-1")
    one, other = create(app, T0), create(app, T0)

    outcomes = app.run_batch(
        [
            lambda uow: app.claim(uow, one, as_("rep-1", T0 + HOUR)),
            lambda uow: app.claim(uow, other, as_("rep-1", T0 + HOUR)),
        ]
    )

    assert outcomes[0].error is None
    assert isinstance(outcomes[1].error, PoolRuleBroken)
    assert outcomes[1].error.facts["rule"] == "pool.max_held"
    assert app.opportunity(other).owner_id is None


# -- the previous owner's cooldown --------------------------------------------------------------------


def test_the_owner_it_was_reclaimed_from_claims_it_back_only_after_the_cooldown() -> None:
    app = pool_app()
    oid = create(app, T0, owner_id="rep-1")
    reclaim(app, oid, T0 + HOUR)

    assert refused(lambda: claim(app, oid, "rep-1", T0 + HOUR + DAY - timedelta(seconds=1))) == {
        "rule": "pool.previous_owner_cooldown",
        "rule_id": "ka",
        "until": (T0 + HOUR + DAY).isoformat(),
    }
    claim(app, oid, "rep-1", T0 + HOUR + DAY)
    assert app.opportunity(oid).owner_id == "rep-1"


def test_another_rep_may_claim_it_at_once() -> None:
    app = pool_app()
    oid = create(app, T0, owner_id="rep-1")
    reclaim(app, oid, T0 + HOUR)

    claim(app, oid, "rep-2", T0 + 2 * HOUR)

    assert app.opportunity(oid).owner_id == "rep-2"


def test_a_detour_through_another_owner_does_not_end_the_first_owners_cooldown() -> None:
    app = pool_app()
    oid = create(app, T0, owner_id="rep-1")
    reclaim(app, oid, T0 + HOUR)
    claim(app, oid, "rep-2", T0 + 2 * HOUR)
    reclaim(app, oid, T0 + 3 * HOUR)

    assert claim_refused_rule(app, oid, "rep-1", T0 + 4 * HOUR) == "pool.previous_owner_cooldown"


# -- redistribution at a reclaim -------------------------------------------------------------------


def test_least_loaded_gives_a_reclaimed_one_at_once_in_the_same_unit_of_work() -> None:
    app = pool_app()
    create(app, T0, owner_id="rep-2", tier="SMB")
    create(app, T0, owner_id="rep-2", tier="SMB")  # rep-2 is full under `smb`
    create(app, T0, owner_id="rep-3")  # rep-3 holds one KA
    oid = create(app, T0, owner_id="rep-1", tier="SMB")

    reclaim(app, oid, T0 + HOUR, by="service")

    reclaimed, assigned = events(app, oid)[-2:]
    assert type(reclaimed).__name__ == "OpportunityReclaimed"
    assert (type(assigned).__name__, assigned.owner_id, assigned.rule_id) == (
        "OpportunityAssigned",
        "rep-3",
        "smb",
    )
    assert (assigned.claimed, assigned.override, assigned.actor) == (False, False, "service")
    assert app.opportunity(oid).status == "open"
    assert ledger_version(app, "rep-3") == 2  # opened, then the assignment


def test_least_loaded_breaks_ties_by_principal_id_and_never_gives_back() -> None:
    app = pool_app()
    first = create(app, T0, owner_id="rep-1", tier="SMB")
    reclaim(app, first, T0 + HOUR)
    assert app.opportunity(first).owner_id == "rep-2"  # rep-2 and rep-3 hold none

    second = create(app, T0, owner_id="rep-2", tier="SMB")
    reclaim(app, second, T0 + 2 * HOUR)
    assert app.opportunity(second).owner_id == "rep-1"  # rep-1 and rep-3 hold none


def test_a_reclaimed_one_stays_pooled_when_no_rep_may_take_it() -> None:
    app = pool_app()
    for rep in ("rep-2", "rep-3"):
        for _ in range(2):
            create(app, T0, owner_id=rep, tier="SMB")
    oid = create(app, T0, owner_id="rep-1", tier="SMB")

    reclaim(app, oid, T0 + HOUR)

    assert (app.opportunity(oid).status, app.opportunity(oid).owner_id) == ("pooled", None)


def test_round_robin_gives_in_turn_skipping_the_previous_owner_and_full_reps() -> None:
    app = pool_app()
    given = []
    for n, owner in enumerate(["rep-3", "rep-1", "rep-3"]):
        oid = create(app, T0, owner_id=owner, tier="SMB", type_="renewal")
        reclaim(app, oid, T0 + (n + 1) * HOUR)
        given.append(app.opportunity(oid).owner_id)

    # rep-1 first; after rep-1, rep-2; after rep-2 comes rep-3, the owner it was reclaimed
    # from: rep-1.
    assert given == ["rep-1", "rep-2", "rep-1"]


def test_round_robin_skips_a_full_rep() -> None:
    app = pool_app()
    for _ in range(2):
        create(app, T0, owner_id="rep-1", tier="SMB", type_="renewal")
    oid = create(app, T0, owner_id="rep-3", tier="SMB", type_="renewal")

    reclaim(app, oid, T0 + HOUR)

    assert app.opportunity(oid).owner_id == "rep-2"


def test_the_round_robin_turn_survives_a_restart(tmp_path: Path) -> None:
    env = eventsourcing_env(f"sqlite:///{tmp_path}/eventstore.db")
    app = pool_app(env=env)
    oid = create(app, T0, owner_id="rep-3", tier="SMB", type_="renewal")
    reclaim(app, oid, T0 + HOUR)
    assert app.opportunity(oid).owner_id == "rep-1"
    app.close()

    again = pool_app(env=env)
    other = create(again, T0, owner_id="rep-3", tier="SMB", type_="renewal")
    reclaim(again, other, T0 + 2 * HOUR)

    assert again.opportunity(other).owner_id == "rep-2"


def test_a_pool_rule_keeps_a_reclaimed_one_pooled() -> None:
    app = pool_app()
    oid = create(app, T0, owner_id="rep-1")

    reclaim(app, oid, T0 + HOUR)

    assert app.opportunity(oid).status == "pooled"
    assert type(events(app, oid)[-1]).__name__ == "OpportunityReclaimed"


def test_without_pool_rules_nothing_is_limited_nor_written_in_a_ledger() -> None:
    app = pool_app(Pool(rules=()))
    oids = [create(app, T0) for _ in range(5)]
    for oid in oids:
        claim(app, oid, "rep-1", T0 + HOUR)
    reclaim(app, oids[0], T0 + 2 * HOUR)
    claim(app, oids[0], "rep-1", T0 + 2 * HOUR)

    assert ledger_version(app, "rep-1") is None


# -- standing --------------------------------------------------------------------------------------


def test_the_standing_gives_each_rules_figures_and_what_is_cooling() -> None:
    app = pool_app()
    ka = [create(app, T0) for _ in range(2)]
    claim(app, ka[0], "rep-1", T0 + HOUR)
    create(app, T0, owner_id="rep-1", tier="SMB")
    lost = create(app, T0, owner_id="rep-1")
    reclaim(app, lost, T0 + 2 * HOUR)

    standing = app.pool.standing("rep-1", T0 + 3 * HOUR)

    figures = {
        r.rule_id: (r.held, r.max_held, r.claims_today, r.claim_limit_per_day)
        for r in standing.rules
    }
    assert figures == {"ka": (1, 3, 1, 2), "smb": (1, 2, 0, None), "smb-renewal": (0, 2, 0, None)}
    assert standing.cooling == [(str(lost), T0 + 2 * HOUR + DAY)]
    assert app.pool.standing("rep-1", T0 + 2 * HOUR + DAY).cooling == []
    assert app.pool.standing("rep-1", T0 + DAY).rules[0].claims_today == 0


def test_the_pool_rules_need_somewhere_to_count() -> None:
    app = OpportunityApp(rules_with(SMALL), env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    with pytest.raises(RuntimeError, match="count_in"):
        app.pool.standing("rep-1", T0)


# -- a race the count misses ---------------------------------------------------------------------


class CountThenRace(StoreHoldings):
    """Counts, then once lets `race` run: another copy of the service committing between a
    claim's count and its save."""

    def __init__(self, app: OpportunityApp, race: Callable[[], object]) -> None:
        super().__init__(app)
        self._races = [race]

    def held_by(self, owner_ids: Any) -> list[Held]:
        counted = super().held_by(owner_ids)
        if self._races:
            self._races.pop()()
        return counted


@pytest.mark.parametrize("ledger_exists", [False, True])
def test_a_claim_committed_after_the_count_makes_the_save_conflict_and_the_rerun_refuse(
    tmp_path: Path, ledger_exists: bool
) -> None:
    """The owner's ledger is read before the count, so a claim another copy of the service
    commits after it makes this save conflict; run again, this claim counts that one."""
    env = eventsourcing_env(f"sqlite:///{tmp_path}/eventstore.db")
    here, there = pool_app(env=env), pool_app(env=env)
    for _ in range(2):
        create(here, T0 - 2 * DAY, owner_id="rep-1")
    if ledger_exists:  # a claim yesterday opened it
        earlier = create(here, T0 - 2 * DAY)
        claim(here, earlier, "rep-1", T0 - DAY)
        reclaim(here, earlier, T0 - DAY)
    mine, theirs = create(here, T0), create(here, T0)
    here.pool.count_in(CountThenRace(here, lambda: claim(there, theirs, "rep-1", T0 + HOUR)))

    (outcome,) = here.run_batch([lambda uow: here.claim(uow, mine, as_("rep-1", T0 + HOUR))])

    assert isinstance(outcome.error, PoolRuleBroken), outcome
    assert outcome.error.facts["rule"] == "pool.max_held"
    assert here.opportunity(mine).owner_id is None
    assert here.opportunity(theirs).owner_id == "rep-1"
