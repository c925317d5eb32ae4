"""reached(S), the funnel conversion rate and the win rate at a stage (SPEC §5); pure.

reached(S) = opportunities that ever entered S or any later stage, or won. A skipped stage
has no visit; it counts as passed because a later stage was entered (its index is below the
furthest one). A won opportunity reached every stage, also when it won before the last.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReachCount:
    """How many opportunities of one segment got this far and have this status."""

    pipeline_id: str
    tier: str
    ownership: str
    furthest_index: int
    status: str
    count: int


@dataclass
class Reach:
    """A cohort's reach through one pipeline of `stages` stages."""

    stages: int
    include_voided: bool = False
    reached: list[int] = field(default_factory=list)
    lost_reached: list[int] = field(default_factory=list)
    total: int = 0
    won: int = 0
    lost: int = 0
    voided: int = 0

    def __post_init__(self) -> None:
        self.reached = self.reached or [0] * self.stages
        self.lost_reached = self.lost_reached or [0] * self.stages

    def add(self, furthest_index: int, status: str, count: int) -> None:
        """Count opportunities; voided ones (mistakes, duplicates) only in `voided` unless
        asked to include them."""
        if status == "voided":
            self.voided += count
            if not self.include_voided:
                return
        self.total += count
        if status == "won":
            self.won += count
            passed = self.stages
        else:
            passed = min(furthest_index, self.stages - 1) + 1
        for i in range(passed):
            self.reached[i] += count
        if status == "lost":
            self.lost += count
            for i in range(passed):
                self.lost_reached[i] += count


def reach(rows: Iterable[ReachCount], stages: int, include_voided: bool = False) -> Reach:
    found = Reach(stages, include_voided)
    for row in rows:
        found.add(row.furthest_index, row.status, row.count)
    return found


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def conversion_rates(r: Reach) -> list[float | None]:
    """S → next stage: reached(next) / reached(S); the last stage's next is `won`."""
    rates = []
    for i in range(r.stages):
        following = r.reached[i + 1] if i + 1 < r.stages else r.won
        rates.append(ratio(following, r.reached[i]))
    return rates


def win_rates(r: Reach) -> list[float | None]:
    """Win rate at S: won / (won + lost) among closed opportunities that reached S."""
    return [ratio(r.won, r.won + r.lost_reached[i]) for i in range(r.stages)]
