"""Standards (SPEC §5): industry values from the rules file, and falling below a standard.

When the cohort spans several segments (no tier or ownership filter), the industry value is
the mean of each segment's value weighted by the segment's share of the figure's population
(reached for conversion rate, completed visits for conversion days, closed for win rate).
"""

from collections.abc import Mapping
from typing import Literal

from contracts.rules import Rulebook, Standard

Metric = Literal["conversion_rate", "conversion_days", "win_rate"]
Segment = tuple[str | None, str | None]  # (tier, ownership); None = not known


def industry_standard(
    rules: Rulebook, metric: Metric, type_: str, stage: str, segment: Segment
) -> float | None:
    """The value of the most specific standard matching the segment (first on a tie) that
    gives this metric; a key the segment does not know (None) only matches rules without it."""
    best: Standard | None = None
    tier, ownership = segment
    for standard in rules.standards.industry:
        if getattr(standard, metric) is None:
            continue
        match = standard.match
        if match.matches(tier, ownership, type_, stage) and (  # type: ignore[arg-type]
            best is None or match.specificity > best.match.specificity
        ):
            best = standard
    return None if best is None else getattr(best, metric)


def blended_industry_standard(
    rules: Rulebook,
    metric: Metric,
    type_: str,
    stage: str,
    weights: Mapping[Segment, float],
    requested: Segment,
) -> float | None:
    """The industry value for a cohort: segments weighted by their population; with no
    population, the standard of the segment the request names."""
    total = value = 0.0
    for segment, weight in weights.items():
        if weight <= 0:
            continue
        found = industry_standard(rules, metric, type_, stage, segment)
        if found is not None:
            total += weight
            value += weight * found
    if total > 0:
        return value / total
    return industry_standard(rules, metric, type_, stage, requested)


def falls_below(
    value: float | None, standard: float | None, *, lower_is_better: bool = False
) -> bool | None:
    """True when the figure is worse than the standard (for days: more days); None when
    either is missing."""
    if value is None or standard is None:
        return None
    return value > standard if lower_is_better else value < standard
