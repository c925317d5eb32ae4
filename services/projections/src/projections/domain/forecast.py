"""The forecast (SPEC §5): Σ amount × win rate at the current stage, by expected close month.

The win rate is the one measured for the same cohort at the opportunity's current stage;
where the cohort has no closed opportunity that reached the stage, the stage's default
probability from the rules file stands in (`basis` says which was used).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

CENT = Decimal("0.01")
UNSCHEDULED = "unscheduled"


@dataclass(frozen=True)
class OpenAmount:
    """Active opportunities of one stage with one expected close date and currency."""

    pipeline_id: str
    stage: str
    expected_close_on: date | None
    currency: str
    count: int
    amount: Decimal
    without_amount: int
    # A manager's forecast category over the stage's (None: the stage's).
    category_override: str | None = None


@dataclass(frozen=True)
class Rate:
    value: Decimal
    basis: str  # "measured" | "probability" | "none"


@dataclass
class Month:
    month: str
    opportunities: int = 0
    without_amount: int = 0
    amount: Decimal = Decimal(0)
    weighted: Decimal = Decimal(0)
    other_currencies: dict[str, dict[str, Decimal]] = field(default_factory=dict)


def month_of(day: date | None) -> str:
    return UNSCHEDULED if day is None else f"{day.year:04d}-{day.month:02d}"


def forecast(
    rows: Iterable[OpenAmount], rate_of: Callable[[str, str], Rate], currency: str
) -> list[Month]:
    """One entry per expected close month (unscheduled last); amounts in `currency`, other
    currencies listed apart, never added to them."""
    months: dict[str, Month] = {}
    for row in rows:
        month = months.setdefault(
            month_of(row.expected_close_on), Month(month_of(row.expected_close_on))
        )
        month.opportunities += row.count
        month.without_amount += row.without_amount
        weighted = row.amount * rate_of(row.pipeline_id, row.stage).value
        if row.currency == currency:
            month.amount += row.amount
            month.weighted += weighted
        else:
            other = month.other_currencies.setdefault(
                row.currency, {"amount": Decimal(0), "weighted": Decimal(0)}
            )
            other["amount"] += row.amount
            other["weighted"] += weighted
    return sorted(months.values(), key=lambda m: (m.month == UNSCHEDULED, m.month))


CLOSED = "closed"


@dataclass
class Sums:
    amount: Decimal = Decimal(0)
    count: int = 0


def categories(
    rows: Iterable[OpenAmount],
    stage_category: Callable[[str, str], str],
    won: Iterable[tuple[str, str, int, Decimal]],
    currency: str,
) -> dict[str, dict[str, Sums]]:
    """Per expected close month, the open opportunities by forecast category (the override,
    else the stage's), amounts unweighted; and `closed`: the wins `(month, currency, count,
    amount)` of each month. Amounts in `currency` only; counts of every currency."""
    months: dict[str, dict[str, Sums]] = {}

    def add(month: str, category: str, count: int, cur: str, amount: Decimal) -> None:
        sums = months.setdefault(month, {}).setdefault(category, Sums())
        sums.count += count
        if cur == currency:
            sums.amount += amount

    for row in rows:
        category = row.category_override or stage_category(row.pipeline_id, row.stage)
        add(month_of(row.expected_close_on), category, row.count, row.currency, row.amount)
    for month, cur, count, amount in won:
        add(month, CLOSED, count, cur, amount)
    return months


CATEGORIES = ("pipeline", "best_case", "commit", CLOSED)


def with_months(months: list[Month], by_category: Mapping[str, object]) -> list[Month]:
    """The forecast's months and every month that only has wins (empty otherwise), in order."""
    known = {m.month for m in months}
    every = months + [Month(month) for month in by_category if month not in known]
    return sorted(every, key=lambda m: (m.month == UNSCHEDULED, m.month))


def category_figures(sums: Mapping[str, Sums]) -> dict[str, dict[str, str | int]]:
    return {
        name: {"amount": money(s.amount), "count": s.count}
        for name in CATEGORIES
        for s in (sums.get(name) or Sums(),)
    }


def money(value: Decimal) -> str:
    return str(value.quantize(CENT))
