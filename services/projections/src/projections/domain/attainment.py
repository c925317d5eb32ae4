"""Attainment of targets (SPEC §9.1): each target as it stood at `as_of`, the actual of its
period, the weighted open amount expected to close in it, the gap; pure.

Actuals are credited to the owner and the team at the time of each event, and to the company.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from projections.domain.forecast import Rate, money
from projections.domain.plans import TargetChange

WON_AMOUNT, WON_COUNT, NEW_OPPORTUNITIES = "won_amount", "won_count", "new_opportunities"
METRICS = (WON_AMOUNT, WON_COUNT, NEW_OPPORTUNITIES)
SCOPES = ("company", "team", "rep")
COMPANY = "company"
CREATED, WON = "OpportunityCreated", "OpportunityWon"

Key = tuple[str, str]  # scope, scope id


class Credit(NamedTuple):
    """Events of one type credited to one owner and team (theirs at each event's version)."""

    event_type: str
    owner_id: str | None
    team_id: str | None
    currency: str
    events: int
    amount: Decimal  # Σ won amount (wins), else 0


class OpenOwned(NamedTuple):
    """Active opportunities of one stage, owner, team and currency."""

    pipeline_id: str
    stage: str
    owner_id: str | None
    team_id: str | None
    currency: str
    opportunities: int
    amount: Decimal


def targets_then(changes: Iterable[TargetChange]) -> dict[tuple[str, str, str], TargetChange]:
    """Each target's last change among `changes` (those that occurred by `as_of`), by scope,
    scope id and metric."""
    last: dict[str, TargetChange] = {}
    for c in changes:
        known = last.get(c.target_id)
        if known is None or (known.occurred_at, known.version) < (c.occurred_at, c.version):
            last[c.target_id] = c
    return {(c.scope, c.scope_id, c.metric): c for c in last.values()}


@dataclass
class Figures:
    won_amount: Decimal = Decimal(0)
    won_count: int = 0
    new_opportunities: int = 0
    weighted_amount: Decimal = Decimal(0)
    weighted_count: Decimal = Decimal(0)
    counted: bool = False  # an actual (an event) was credited

    def actual(self, metric: str) -> Decimal:
        return Decimal(getattr(self, metric))

    def weighted(self, metric: str) -> Decimal | None:
        if metric == WON_AMOUNT:
            return self.weighted_amount
        return self.weighted_count if metric == WON_COUNT else None


def _keys(owner_id: str | None, team_id: str | None, company_ids: Iterable[str]) -> list[Key]:
    keys = [(COMPANY, c) for c in company_ids]
    if team_id is not None:
        keys.append(("team", team_id))
    if owner_id is not None:
        keys.append(("rep", owner_id))
    return keys


def figures(
    credits: Iterable[Credit],
    open_owned: Iterable[OpenOwned],
    rate_of: Callable[[str, str], Rate],
    currency: str,
    company_ids: Iterable[str],
) -> dict[Key, Figures]:
    """Actuals and weighted open amounts per scope; amounts in `currency` only."""
    companies = tuple(company_ids)
    found: dict[Key, Figures] = {}
    for c in credits:
        for key in _keys(c.owner_id, c.team_id, companies):
            f = found.setdefault(key, Figures())
            f.counted = True
            if c.event_type == CREATED:
                f.new_opportunities += c.events
            elif c.event_type == WON:
                f.won_count += c.events
                if c.currency == currency:
                    f.won_amount += c.amount
    for o in open_owned:
        rate = rate_of(o.pipeline_id, o.stage).value
        for key in _keys(o.owner_id, o.team_id, companies):
            f = found.setdefault(key, Figures())
            f.weighted_count += o.opportunities * rate
            if o.currency == currency:
                f.weighted_amount += o.amount * rate
    return found


def items(
    targets: Mapping[tuple[str, str, str], TargetChange],
    found: Mapping[Key, Figures],
    metrics: Iterable[str],
) -> list[dict[str, Any]]:
    """One item per metric for every scope with a target or an actual, in scope order."""
    keys = {(scope, scope_id) for scope, scope_id, _ in targets}
    keys |= {key for key, f in found.items() if f.counted}
    answer = []
    for scope, scope_id in sorted(keys, key=lambda k: (SCOPES.index(k[0]), k[1])):
        f = found.get((scope, scope_id)) or Figures()
        for metric in metrics:
            change = targets.get((scope, scope_id, metric))
            target = None if change is None else change.value
            actual = f.actual(metric)
            answer.append(
                {
                    "scope": scope,
                    "scope_id": scope_id,
                    "metric": metric,
                    "target": _shown(metric, target),
                    "actual": _shown(metric, actual),
                    "attainment": float(actual / target) if target else None,
                    "weighted_open": _weighted(metric, f.weighted(metric)),
                    "gap": None if target is None else _shown(metric, target - actual),
                }
            )
    return answer


def _shown(metric: str, value: Decimal | None) -> str | int | float | None:
    """Amounts as decimal strings, counts as numbers (a target's count may have decimals)."""
    if value is None:
        return None
    if metric == WON_AMOUNT:
        return money(value)
    return int(value) if value == value.to_integral_value() else float(value)


def _weighted(metric: str, value: Decimal | None) -> str | float | None:
    if value is None:
        return None
    return money(value) if metric == WON_AMOUNT else round(float(value), 4)
