"""Conversion days and open visits of a stage (SPEC §5); pure.

Conversion days of S = days spent in S over all completed visits of S / number of those
visits, paused time left out; a revert starts a new visit. Open visits (not left yet) are
reported apart: how many, and their mean age (also without paused time) at the as-of instant.

Conversion working days (SPEC §8.4): the same mean in working days of mainland China, over the
completed visits whose working days are known (all, unless some were completed before the read
model counted working days and it was not rebuilt since).
"""

from dataclasses import dataclass, field

DAY = 86_400.0


@dataclass
class StageDwell:
    completed: int = 0
    dwell_seconds: float = 0.0
    paused_seconds: float = 0.0
    completed_by_exit: dict[str, int] = field(default_factory=dict)
    open: int = 0
    open_age_seconds: float = 0.0
    counted_in_working_days: int = 0
    working_days: float = 0.0

    def add_completed(
        self, exit_kind: str, count: int, dwell_seconds: float, paused_seconds: float
    ) -> None:
        self.completed += count
        self.dwell_seconds += dwell_seconds
        self.paused_seconds += paused_seconds
        self.completed_by_exit[exit_kind] = self.completed_by_exit.get(exit_kind, 0) + count

    def add_working_days(self, count: int, working_days: float) -> None:
        self.counted_in_working_days += count
        self.working_days += working_days

    def add_open(self, count: int, age_seconds: float) -> None:
        self.open += count
        self.open_age_seconds += age_seconds

    @property
    def conversion_days(self) -> float | None:
        return self.dwell_seconds / self.completed / DAY if self.completed else None

    @property
    def conversion_working_days(self) -> float | None:
        counted = self.counted_in_working_days
        return self.working_days / counted if counted else None

    @property
    def open_mean_age_days(self) -> float | None:
        return self.open_age_seconds / self.open / DAY if self.open else None

    @property
    def total_days(self) -> float:
        return self.dwell_seconds / DAY
