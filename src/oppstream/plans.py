"""The sales plan the demo sets through the HTTP API as managers would (SPEC §9): this quarter's
targets for the company (admin), each team (admin) and its reps (allocated by the team's
manager), one adjustment with its reason, and two competitions (销售竞赛) — so the dashboard's
attainment and standings panels have something to show."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from oppstream.simulation import TEAMS, Deal

ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class Plan:
    """What was set, and what the API refused (the demo prints both)."""

    quarter: str
    targets: list[dict[str, Any]] = field(default_factory=list)
    competitions: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def quarter_of(day: date) -> tuple[str, date, date]:
    """`2026-Q4` and its first day and the day after its last."""
    index = (day.month - 1) // 3
    start = date(day.year, 3 * index + 1, 1)
    end = date(day.year + 1, 1, 1) if index == 3 else date(day.year, 3 * index + 4, 1)
    return f"{day.year}-Q{index + 1}", start, end


def sprint_id(quarter: str) -> str:
    """The company-wide competition of a quarter."""
    return f"sprint-{quarter.lower()}"


def team_quarter_count(deals: list[Deal], team: str) -> int:
    """A quarter's target of new opportunities for a team: a quarter of its simulated year's,
    and a tenth more."""
    return max(10, round(sum(1 for d in deals if d.team_id == team) / 4 * 1.1))


def team_quarter_target(deals: list[Deal], team: str) -> Decimal:
    """A quarter's won-amount target for a team: a quarter of the amounts its simulated year
    planned, rounded to ten thousand."""
    planned = sum(d.amount for d in deals if d.team_id == team)
    return Decimal(max(10_000, round(planned / 4, -4)))


async def set_plan(base_url: str, tokens: dict[str, str], deals: list[Deal], now: datetime) -> Plan:
    quarter, start, end = quarter_of(now.astimezone(ZONE).date())
    plan = Plan(quarter)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

        async def put(who: str, scope: str, scope_id: str, body: dict[str, Any]) -> None:
            answer = await http.put(
                f"/targets/{quarter}/{scope}/{scope_id}",
                json=body,
                headers={"Authorization": f"Bearer {tokens[who]}"},
            )
            if answer.status_code >= 300:
                plan.refused.append(f"{who} → {scope} {scope_id}: {answer.status_code}")
            else:
                plan.targets.append(answer.json())

        team_targets = {team: team_quarter_target(deals, team) for team in TEAMS}
        await put(
            "admin",
            "company",
            "company",
            {
                "metric": "won_amount",
                "value": str(sum(team_targets.values())),
                "reason": "年度计划分解 annual plan",
            },
        )
        for team, value in team_targets.items():
            await put("admin", "team", team, {"metric": "won_amount", "value": str(value)})
            await put(
                "admin",
                "team",
                team,
                {"metric": "new_opportunities", "value": str(team_quarter_count(deals, team))},
            )
            manager = f"manager-{team}"
            reps = TEAMS[team]
            share = _thousands(value / len(reps))
            for rep in reps:
                await put(
                    manager,
                    "rep",
                    rep,
                    {"metric": "won_amount", "value": str(share), "reason": "平均分配 even split"},
                )
        # The east manager moves part of rep-4's target to rep-1, who holds the larger accounts.
        east = _thousands(team_targets["east"] / len(TEAMS["east"]))
        moved = _thousands(east / 5)
        await put(
            "manager-east",
            "rep",
            "rep-1",
            {"metric": "won_amount", "value": str(east + moved), "reason": "承接KA客户 takes KA"},
        )
        await put(
            "manager-east",
            "rep",
            "rep-4",
            {"metric": "won_amount", "value": str(east - moved), "reason": "转出KA客户 hands KA"},
        )
        for who, body in (
            (
                "admin",
                {
                    "id": sprint_id(quarter),
                    "name": f"{quarter} 冲刺 sprint: won amount",
                    "metric": "won_amount",
                    "from": start.isoformat(),
                    "to": end.isoformat(),
                },
            ),
            (
                "manager-east",
                {
                    "id": f"east-follow-ups-{quarter.lower()}",
                    "name": "东区跟进之星 East follow-ups",
                    "metric": "follow_ups",
                    "from": (now.astimezone(ZONE).date() - timedelta(days=30)).isoformat(),
                    "to": end.isoformat(),
                    "team_ids": ["east"],
                },
            ),
        ):
            answer = await http.post(
                "/competitions", json=body, headers={"Authorization": f"Bearer {tokens[who]}"}
            )
            if answer.status_code >= 300:
                plan.refused.append(f"{who} → competition {body['id']}: {answer.status_code}")
            else:
                plan.competitions.append(str(body["id"]))
    return plan


def _thousands(value: Decimal) -> Decimal:
    """Rounded to a thousand, written out in full (not `1.2E+5`)."""
    return Decimal(int(round(value, -3)))
