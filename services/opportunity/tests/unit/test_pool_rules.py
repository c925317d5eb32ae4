"""The pool rules as decisions (SPEC §8.3): claims a day, max_held, the previous owner's
cooldown (calendar and working days), redistribution; the ledger and what the opportunity
remembers of its reclaims."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts.customer_rules import Pool, PoolRule
from opportunity.domain.errors import PoolRuleBroken
from opportunity.domain.pool_ledger import PoolCursor, PoolLedger
from opportunity.domain.pool_rules import (
    Facts,
    Held,
    check_capacity,
    check_claim,
    cooling_until,
    held_under,
    least_loaded,
    round_robin,
)
from services.opportunity.tests.opportunities import T0, new_opportunity

SHANGHAI = ZoneInfo("Asia/Shanghai")
POOL = Pool()  # the shipped defaults
KA, SMB = POOL.rules
KA_FACTS, SMB_FACTS = Facts("KA", "SOE", "new"), Facts("SMB", "PRIVATE", "resale")
NOW = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)


def rule(**fields: object) -> PoolRule:
    return PoolRule.model_validate({"id": "test-pool", **fields})


def held(owner: str, count: int, facts: Facts = KA_FACTS, prefix: str = "o") -> list[Held]:
    return [Held(f"{prefix}-{owner}-{n}", owner, facts) for n in range(count)]


def refusal(error: pytest.ExceptionInfo[PoolRuleBroken]) -> dict[str, object]:
    return {"code": error.value.code, **error.value.facts}


# -- which rule, and what is held under it --------------------------------------------------------


def test_the_shipped_rules_govern_by_tier() -> None:
    assert (KA_FACTS.rule(POOL), SMB_FACTS.rule(POOL)) == (KA, SMB)
    assert (KA.claim_limit_per_day, KA.max_held, KA.previous_owner_cooldown) == (
        5,
        50,
        timedelta(days=30),
    )
    assert (SMB.claim_limit_per_day, SMB.max_held, SMB.previous_owner_cooldown) == (
        10,
        200,
        timedelta(days=7),
    )


def test_held_counts_only_the_opportunities_the_same_rule_governs() -> None:
    mixed = held("rep-1", 3) + held("rep-1", 4, SMB_FACTS, prefix="smb")

    assert held_under(POOL, KA, mixed) == 3
    assert held_under(POOL, SMB, mixed) == 4
    assert held_under(POOL, KA, mixed, leaving_out="o-rep-1-0") == 2


def test_a_more_specific_rule_takes_its_opportunities_out_of_the_general_count() -> None:
    soe = PoolRule.model_validate({"id": "ka-soe", "match": {"tier": "KA", "ownership": "SOE"}})
    pool = Pool(rules=(KA, soe))
    foreign = Facts("KA", "FOREIGN", "new")
    mixed = held("rep-1", 2) + held("rep-1", 5, foreign, prefix="f")

    assert (held_under(pool, KA, mixed), held_under(pool, soe, mixed)) == (5, 2)


# -- claims a day and max_held ----------------------------------------------------------------------


def test_a_claim_within_every_limit_passes() -> None:
    check_claim(KA, held=49, claims_today=4, cooling=None, at=NOW)


def test_the_claim_over_the_daily_limit_is_refused_with_the_figures() -> None:
    with pytest.raises(PoolRuleBroken) as refused:
        check_claim(KA, held=0, claims_today=5, cooling=None, at=NOW)

    assert refusal(refused) == {
        "code": "pool_rule",
        "rule": "pool.claim_limit_per_day",
        "rule_id": "ka-pool",
        "limit": 5,
        "count": 5,
    }
    assert "5 a day" in refused.value.message


def test_a_claim_that_would_go_over_max_held_is_refused() -> None:
    with pytest.raises(PoolRuleBroken) as refused:
        check_claim(KA, held=50, claims_today=0, cooling=None, at=NOW)

    assert refusal(refused) == {
        "code": "pool_rule",
        "rule": "pool.max_held",
        "rule_id": "ka-pool",
        "limit": 50,
        "count": 50,
    }


def test_an_assignment_up_to_max_held_passes_and_one_more_is_refused() -> None:
    check_capacity(SMB, 199)
    with pytest.raises(PoolRuleBroken) as refused:
        check_capacity(SMB, 200)
    assert refusal(refused)["rule"] == "pool.max_held"


def test_a_rule_without_limits_refuses_nothing() -> None:
    check_claim(rule(), held=10_000, claims_today=10_000, cooling=None, at=NOW)
    check_capacity(rule(), 10_000)


def test_a_limit_of_zero_closes_the_pool_to_claims() -> None:
    with pytest.raises(PoolRuleBroken) as refused:
        check_claim(rule(claim_limit_per_day=0), held=0, claims_today=0, cooling=None, at=NOW)
    assert refusal(refused)["rule"] == "pool.claim_limit_per_day"


# -- the previous owner's cooldown ---------------------------------------------------------------


def test_the_previous_owner_may_claim_back_once_the_calendar_cooldown_has_passed() -> None:
    reclaimed = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    until = cooling_until(SMB, reclaimed, SHANGHAI)
    assert until == reclaimed + timedelta(days=7)

    with pytest.raises(PoolRuleBroken) as refused:
        check_claim(SMB, held=0, claims_today=0, cooling=until, at=until - timedelta(seconds=1))
    assert refusal(refused) == {
        "code": "pool_rule",
        "rule": "pool.previous_owner_cooldown",
        "rule_id": "smb-pool",
        "until": "2026-11-08T03:00:00+00:00",
    }
    check_claim(SMB, held=0, claims_today=0, cooling=until, at=until)


def test_a_working_day_cooldown_skips_national_day_and_counts_the_adjusted_saturday() -> None:
    # Reclaimed on Wednesday 30 September 2026, 10:00 in Shanghai. 国庆 is 1–7 October; the
    # 5th working day after is Tuesday 13 October: 8, 9, Saturday 10 (调休), 12, 13.
    reclaimed = datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)
    five_working_days = rule(previous_owner_cooldown="5wd")

    until = cooling_until(five_working_days, reclaimed, SHANGHAI)

    assert until == datetime(2026, 10, 13, 2, 0, tzinfo=UTC)
    assert cooling_until(rule(previous_owner_cooldown="P5D"), reclaimed, SHANGHAI) == datetime(
        2026, 10, 5, 2, 0, tzinfo=UTC
    )
    day_before = datetime(2026, 10, 12, 18, 0, tzinfo=SHANGHAI)
    with pytest.raises(PoolRuleBroken):
        check_claim(five_working_days, held=0, claims_today=0, cooling=until, at=day_before)
    check_claim(five_working_days, held=0, claims_today=0, cooling=until, at=until)


def test_no_cooldown_without_a_rule_for_it_or_a_reclaim() -> None:
    assert cooling_until(rule(), NOW, SHANGHAI) is None
    assert cooling_until(KA, None, SHANGHAI) is None


def test_the_cooldown_is_checked_before_the_limits() -> None:
    with pytest.raises(PoolRuleBroken) as refused:
        check_claim(KA, held=50, claims_today=5, cooling=NOW + timedelta(days=1), at=NOW)
    assert refusal(refused)["rule"] == "pool.previous_owner_cooldown"


# -- redistribution -------------------------------------------------------------------------------

REPS = ["rep-a", "rep-b", "rep-c", "rep-d"]


def test_least_loaded_takes_the_rep_with_the_fewest_active_opportunities() -> None:
    loads = {"rep-a": 7, "rep-b": 3, "rep-c": 5, "rep-d": 4}
    assert least_loaded(REPS, None, loads, full=()) == "rep-b"


def test_least_loaded_breaks_ties_by_principal_id_and_counts_a_rep_without_any_as_zero() -> None:
    assert least_loaded(REPS, None, {"rep-a": 2, "rep-b": 1, "rep-d": 0}, full=()) == "rep-c"
    assert least_loaded(["rep-b", "rep-a"], None, {"rep-a": 1, "rep-b": 1}, full=()) == "rep-a"


def test_least_loaded_never_picks_the_previous_owner_nor_a_full_rep() -> None:
    loads = {"rep-a": 0, "rep-b": 1, "rep-c": 2, "rep-d": 3}
    assert least_loaded(REPS, "rep-a", loads, full={"rep-b"}) == "rep-c"
    assert least_loaded(REPS, "rep-a", loads, full={"rep-b", "rep-c", "rep-d"}) is None
    assert least_loaded([], None, {}, full=()) is None


def test_round_robin_goes_in_principal_id_order_after_the_last_one_and_around() -> None:
    assert round_robin(REPS, None, None, full=()) == "rep-a"
    assert round_robin(REPS, "rep-b", None, full=()) == "rep-c"
    assert round_robin(REPS, "rep-d", None, full=()) == "rep-a"
    # The last one left the team: the next one after its id.
    assert round_robin(REPS, "rep-bb", None, full=()) == "rep-c"


def test_round_robin_skips_the_previous_owner_and_full_reps() -> None:
    assert round_robin(REPS, "rep-a", "rep-b", full={"rep-c"}) == "rep-d"
    assert round_robin(REPS, "rep-c", "rep-d", full=()) == "rep-a"
    assert round_robin(["rep-a"], None, "rep-a", full=()) is None
    assert round_robin(REPS, "rep-a", None, full=set(REPS)) is None


# -- the ledger, the cursor, and the opportunity's memory of its reclaims --------------------------


def test_the_ledger_counts_claims_per_rule_and_calendar_day_of_the_zone() -> None:
    ledger = PoolLedger(owner_id="rep-1")
    # 23:30 and 00:30 in Shanghai: two calendar days there, one in UTC.
    late = datetime(2026, 11, 2, 15, 30, tzinfo=UTC)
    ledger.took("o-1", "ka-pool", claimed=True, override=False, at=late)
    ledger.took("o-2", "ka-pool", claimed=True, override=False, at=late + timedelta(hours=1))
    ledger.took("o-3", "smb-pool", claimed=True, override=False, at=late + timedelta(hours=1))
    ledger.took("o-4", "ka-pool", claimed=False, override=False, at=late + timedelta(hours=1))

    assert ledger.claims_on("ka-pool", late.astimezone(SHANGHAI).date(), SHANGHAI) == 1
    assert ledger.claims_on("ka-pool", (late + timedelta(hours=1)).date(), SHANGHAI) == 1
    assert ledger.claims_on("ka-pool", late.date(), UTC) == 2
    assert ledger.claims_on("smb-pool", late.date(), UTC) == 1


def test_the_ledger_keeps_only_the_claims_of_the_last_two_days() -> None:
    ledger = PoolLedger(owner_id="rep-1")
    for day in range(5):
        ledger.took(f"o-{day}", "ka-pool", True, False, NOW + timedelta(days=day))
    assert [c["at"] for c in ledger.recent_claims] == [
        NOW + timedelta(days=3),
        NOW + timedelta(days=4),
    ]


def test_the_cursor_remembers_whom_it_gave_to_last() -> None:
    cursor = PoolCursor(rule_id="ka-pool", team_id="east")
    assert cursor.last_owner_id is None
    cursor.gave("rep-2", "o-1")
    assert cursor.last_owner_id == "rep-2"
    assert PoolCursor.create_id("ka-pool", "east") != PoolCursor.create_id("ka-pool", "west")


def test_the_opportunity_remembers_each_owner_it_was_reclaimed_from_and_when_last() -> None:
    opp = new_opportunity()
    opp.reclaim("stale", None, None, T0 + timedelta(days=1), "svc")
    opp.claim("rep-2", T0 + timedelta(days=2), "rep-2")
    opp.reclaim("stale", None, None, T0 + timedelta(days=3), "svc")
    opp.assign("rep-1", T0 + timedelta(days=4), "manager-east")
    opp.reclaim("stale", None, None, T0 + timedelta(days=5), "svc")

    assert dict(opp.reclaimed_from) == {
        "rep-2": T0 + timedelta(days=3),
        "rep-1": T0 + timedelta(days=5),
    }
    assert opp.pending_events[-2].override is False  # type: ignore[attr-defined]


def test_an_assignment_records_its_override_and_the_redistributing_rule() -> None:
    opp = new_opportunity()
    opp.assign("rep-2", T0 + timedelta(hours=1), "manager-east", override=True)
    opp.reclaim("stale", "ka-default", None, T0 + timedelta(hours=2), "svc")
    opp.assign("rep-3", T0 + timedelta(hours=2), "svc", rule_id="ka-pool")

    overridden, _, redistributed = opp.pending_events[-3:]
    assert (overridden.override, overridden.rule_id) == (True, None)  # type: ignore[attr-defined]
    assert (redistributed.override, redistributed.rule_id) == (False, "ka-pool")  # type: ignore[attr-defined]
    assert redistributed.claimed is False  # type: ignore[attr-defined]
