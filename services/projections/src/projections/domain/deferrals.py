"""Deferrals (未来机会分析): a deferral's coded reason, the `bi_deferral` episode rows, and the
figures of `/deferrals` per reason; pure.

A deferral episode starts with `OpportunityDeferred` and ends with the event that takes the
opportunity out of deferred: reactivated, reclaimed to the pool, lost, voided (or won, which the
opportunity service does not allow from deferred).
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from statistics import median

OTHER = "other"
DAY = 86_400.0


class EndKind(StrEnum):
    REACTIVATED = "reactivated"
    LOST = "lost"
    WON = "won"
    VOIDED = "voided"
    RECLAIMED = "reclaimed"


# The event that ends a deferral, by its type.
ENDS = {
    "OpportunityReactivated": EndKind.REACTIVATED,
    "OpportunityLost": EndKind.LOST,
    "OpportunityWon": EndKind.WON,
    "OpportunityVoided": EndKind.VOIDED,
    "OpportunityReclaimed": EndKind.RECLAIMED,
}


def coded(reason: str, note: str | None, codes: Collection[str]) -> tuple[str, str | None]:
    """The reason's code and the note: a deferral recorded before the reasons were coded has
    free text, read as `other` with the text kept as its note (before a note it also has)."""
    if reason in codes:
        return reason, note
    return OTHER, reason if note is None else f"{reason}\n{note}"


@dataclass(frozen=True)
class Started:
    """A `bi_deferral` row as the deferral starts it."""

    opportunity_id: str
    deferred_version: int
    deferred_at: datetime
    reason: str
    note: str | None
    revisit_on: date


@dataclass(frozen=True)
class Ended:
    """How and when the open deferral episode of an opportunity ended."""

    opportunity_id: str
    ended_at: datetime
    ended_version: int
    end_kind: str


@dataclass(frozen=True)
class Episode:
    """An episode as the report reads it; `status` is the opportunity's at `as_of`."""

    reason: str
    deferred_at: datetime
    ended_at: datetime | None
    end_kind: str | None
    status: str


@dataclass
class ReasonFigures:
    deferred: int = 0
    reactivated: int = 0
    won_after_reactivation: int = 0
    lost: int = 0
    still_deferred: int = 0
    ended_otherwise: int = 0
    days: list[float] = field(default_factory=list)

    @property
    def median_days_deferred(self) -> float | None:
        return median(self.days) if self.days else None


def by_reason(
    episodes: Iterable[Episode], reasons: Iterable[str], as_of: datetime
) -> dict[str, ReasonFigures]:
    """Each reason's figures over episodes that began by `as_of`, each as it stood then: an
    end after `as_of` has not happened yet. A reason outside `reasons` gets its own entry."""
    found = {reason: ReasonFigures() for reason in reasons}
    for e in episodes:
        if e.deferred_at > as_of:
            continue
        f = found.setdefault(e.reason, ReasonFigures())
        f.deferred += 1
        kind = e.end_kind if e.ended_at is not None and e.ended_at <= as_of else None
        if kind is None or e.ended_at is None:
            f.still_deferred += 1
            continue
        f.days.append((e.ended_at - e.deferred_at).total_seconds() / DAY)
        if kind == EndKind.REACTIVATED:
            f.reactivated += 1
            f.won_after_reactivation += e.status == "won"
            f.lost += e.status == "lost"
        elif kind == EndKind.LOST:
            f.lost += 1
        else:
            f.ended_otherwise += 1
    return found
