"""A simulated sales organisation: the deals of the last twelve months, as timed commands.

Pure and seeded: the same seed gives the same customers, deals and steps. KA deals move
slowly and are more often paused or deferred; SMB deals move fast. Some are won with
contracts (a few ending soon, so renewals fall due), some lost with a reason, some left idle
so the reminders service reclaims them.
"""

import random
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stdnum.cn import uscc as stdnum_uscc

from contracts.rules import Rulebook

TEAMS = {"east": ("rep-1", "rep-2", "rep-4"), "west": ("rep-3", "rep-5", "rep-6")}
OWNERSHIPS = ("SOE", "FOREIGN", "PRIVATE", "OTHER")
INDUSTRIES = ("manufacturing", "finance", "retail", "energy", "healthcare", "logistics")
REGIONS = ("华东", "华北", "华南", "西南")
NAMES = ("星河", "华信", "博远", "天合", "中科", "海川", "东方", "瑞丰", "金桥", "长城")
SUFFIXES = ("科技有限公司", "集团股份有限公司", "贸易有限公司", "制造有限公司")


@dataclass(frozen=True)
class Pace:
    """How a segment moves: days per stage, and how often things happen."""

    stage_days: float
    follow_ups: int
    pause: float
    defer: float
    revert: float
    skip: float
    drop: float
    win: float
    amount: tuple[int, int]


PACES = {
    "KA": Pace(16, 3, 0.18, 0.10, 0.10, 0.05, 0.22, 0.62, (300_000, 3_000_000)),
    "SMB": Pace(4, 1, 0.04, 0.02, 0.05, 0.30, 0.25, 0.75, (20_000, 250_000)),
}


@dataclass(frozen=True)
class Step:
    at: datetime
    command: str
    body: dict[str, Any]


@dataclass
class Deal:
    """One opportunity: how it is born (a lead, or a direct create) and what happens to it."""

    key: str
    type: str
    customer: dict[str, Any]
    owner_id: str
    team_id: str
    created_at: datetime
    amount: int
    via_lead: bool
    steps: list[Step] = field(default_factory=list)

    @property
    def tier(self) -> str:
        """The tier given, else the one the facts classify to (headcount and revenue of a KA
        customer reach the shipped rules' thresholds)."""
        given = self.customer.get("tier")
        return str(given) if given else ("KA" if self.customer["employees"] >= 2000 else "SMB")


def valid_uscc(rng: random.Random) -> str:
    body = (
        "91"
        + "".join(rng.choices("0123456789", k=6))
        + "".join(rng.choices("0123456789ABCDEFGHJKLMNPQRTUWXY", k=9))
    )
    return body + stdnum_uscc.calc_check_digit(body)


def customer(rng: random.Random) -> dict[str, Any]:
    """A customer with the facts the classification rules read (SPEC §8.2): headcount, revenue
    and capital in line with its tier, which half the time is left to the rules."""
    tier = "KA" if rng.random() < 0.4 else "SMB"
    ka = tier == "KA"
    who: dict[str, Any] = {
        "uscc": valid_uscc(rng),
        "name": rng.choice(NAMES) + rng.choice(NAMES) + rng.choice(SUFFIXES),
        "tier": tier,
        "ownership": rng.choice(OWNERSHIPS),
        "industry": rng.choice(INDUSTRIES),
        "region": rng.choice(REGIONS),
        "employees": rng.randint(2_000, 60_000) if ka else rng.randint(12, 1_500),
        "annual_revenue": f"{rng.randrange(1_000, 80_000) if ka else rng.randrange(2, 900)}000000",
        "registered_capital": f"{rng.randrange(100, 5_000) if ka else rng.randrange(1, 90)}000000",
    }
    if rng.random() < 0.5:
        del who["tier"]  # the shipped classification rules give it
    return who


def plan(rules: Rulebook, now: datetime, deals: int, seed: int = 7) -> list[Deal]:
    """`deals` deals created over the last year, each with its steps up to `now`."""
    rng = random.Random(seed)
    planned: list[Deal] = []
    for n in range(deals):
        kind = rng.choices(("new", "renewal", "resale"), weights=(70, 15, 15))[0]
        team = rng.choice(tuple(TEAMS))
        created = now - timedelta(days=rng.uniform(3, 360), hours=rng.uniform(0, 8))
        deal = Deal(
            key=f"demo-{seed}-{n}",
            type=kind,
            customer=customer(rng),
            owner_id=rng.choice(TEAMS[team]),
            team_id=team,
            created_at=created,
            amount=0,
            via_lead=kind == "new",
        )
        pace = PACES[deal.tier]
        deal.amount = rng.randrange(*pace.amount, 1000)
        if kind != "new":
            # A renewal or a resale follows a contract the customer won (SPEC §8.2 type rules).
            planned.append(_first_contract(rng, rules, deal))
        deal.steps = _story(rng, rules, deal, pace, now)
        planned.append(deal)
    return planned


def _first_contract(rng: random.Random, rules: Rulebook, later_deal: Deal) -> Deal:
    """The `new` deal, won a few months before `later_deal`, that made the customer one."""
    created = later_deal.created_at - timedelta(days=rng.uniform(150, 330))
    first = Deal(
        key=f"{later_deal.key}-first",
        type="new",
        customer=later_deal.customer,
        owner_id=later_deal.owner_id,
        team_id=later_deal.team_id,
        created_at=created,
        amount=later_deal.amount,
        via_lead=True,
    )
    at = created
    for stage in rules.pipeline_for("new", first.tier).stages[1:]:
        at += timedelta(days=rng.uniform(2, 12))
        first.steps.append(Step(at, "advance", {"to_stage": stage.id}))
    at += timedelta(days=rng.uniform(1, 5))
    first.steps.append(
        Step(
            at,
            "win",
            {
                "amount": f"{first.amount}.00",
                "contract_ref": f"HT-{first.key}",
                "contract_start_on": at.date().isoformat(),
                "contract_end_on": (at.date() + timedelta(days=365)).isoformat(),
            },
        )
    )
    return first


def _story(
    rng: random.Random, rules: Rulebook, deal: Deal, pace: Pace, now: datetime
) -> list[Step]:
    """The deal's commands, in time order, none after `now`."""
    stages = rules.pipeline_for(deal.type, deal.tier).stages
    at, steps, index = deal.created_at, [], 0
    stale = rng.random() < 0.08

    def later(days: float) -> datetime:
        return at + timedelta(days=max(0.05, rng.expovariate(1 / days)))

    while True:
        for _ in range(rng.randint(0, pace.follow_ups)):
            at = later(pace.stage_days / 3)
            kind = rng.choice(("call", "visit", "meeting", "email"))
            steps.append(
                Step(at, "follow-ups", {"kind": kind, "note": f"{kind}: next steps agreed"})
            )
        if stale and index >= 1:
            break  # nobody touches it again: the reminders service will reclaim it
        if rng.random() < pace.pause:
            at = later(2)
            until = (at + timedelta(days=rng.uniform(10, 30))).date()
            steps.append(
                Step(
                    at,
                    "pause",
                    {"reason": "客户预算冻结 budget freeze", "until": until.isoformat()},
                )
            )
            at = datetime.combine(until, at.timetz()) + timedelta(hours=2)
            steps.append(Step(at, "resume", {}))
        if rng.random() < pace.defer:
            at = later(2)
            revisit = (at + timedelta(days=rng.uniform(30, 90))).date()
            steps.append(
                Step(
                    at,
                    "defer",
                    {**_deferral(deal, index), "revisit_on": revisit.isoformat()},
                )
            )
            at = datetime.combine(revisit, at.timetz())
            steps.append(Step(at, "reactivate", {}))
        at = later(pace.stage_days)
        if index == len(stages) - 1:
            if rng.random() < pace.win:
                start = at.date()
                # A few wins of about a year ago end soon: their renewals fall due now.
                length = 365 if rng.random() < 0.7 else rng.randint(300, 380)
                steps.append(
                    Step(
                        at,
                        "win",
                        {
                            "amount": f"{deal.amount}.00",
                            "contract_ref": f"HT-{deal.key}",
                            "contract_start_on": start.isoformat(),
                            "contract_end_on": (start + timedelta(days=length)).isoformat(),
                        },
                    )
                )
            else:
                steps.append(Step(at, "lose", _loss(rng)))
            break
        if rng.random() < pace.drop:
            steps.append(Step(at, "lose", _loss(rng)))
            break
        if index > 0 and rng.random() < pace.revert and stages[index - 1].allow_back:
            steps.append(
                Step(
                    at,
                    "revert",
                    {"to_stage": stages[index - 1].id, "reason": "需求变更 scope changed"},
                )
            )
            at = later(pace.stage_days / 2)
            steps.append(Step(at, "advance", {"to_stage": stages[index].id}))
            continue
        target = index + 1
        if target < len(stages) - 1 and stages[target].skippable and rng.random() < pace.skip:
            target += 1
        steps.append(Step(at, "advance", {"to_stage": stages[target].id}))
        index = target
    return [step for step in steps if step.at < now]


# Why deals are deferred (the rules file's coded reasons), the tender cycle most often.
DEFERRALS: tuple[dict[str, str], ...] = (
    {"reason": "tender_cycle"},
    {"reason": "tender_cycle"},
    {"reason": "budget_cycle"},
    {"reason": "fiscal_year"},
    {"reason": "leadership_change"},
    {"reason": "other", "note": "客户搬迁新园区 moving to a new campus"},
)


def _deferral(deal: Deal, stage_index: int) -> dict[str, str]:
    """A deal's deferral at a stage: spread over the reasons by the deal's key, leaving the
    random stream (and so the rest of the simulated year) as it was."""
    return DEFERRALS[(zlib.crc32(deal.key.encode()) + stage_index) % len(DEFERRALS)]


def _loss(rng: random.Random) -> dict[str, Any]:
    reason = rng.choices(
        ("price", "competitor", "no_budget", "no_decision", "timing", "requirements_mismatch"),
        weights=(30, 25, 15, 15, 10, 5),
    )[0]
    body: dict[str, Any] = {"reason": reason}
    if reason == "competitor":
        body["competitor"] = rng.choice(("Salesforce", "纷享销客", "销售易", "HubSpot"))
    return body
