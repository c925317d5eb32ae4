"""The forecast (SPEC §5): Σ amount × win rate at the current stage, by expected close month.

The win rate is the one measured for the same cohort at the opportunity's current stage;
where the cohort has no closed opportunity that reached the stage, the stage's default
probability from the rules file stands in (`basis` says which was used).
"""

from collections.abc import Callable, Iterable
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


def money(value: Decimal) -> str:
    return str(value.quantize(CENT))
