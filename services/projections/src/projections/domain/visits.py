"""Stage visits (SPEC §5): from entering a stage to leaving it; pure.

A visit starts when an opportunity enters a stage (created, advanced or reverted into it)
and ends when it leaves it (advanced, reverted, won, lost, voided).

Paused time is kept apart so conversion days leave it out; deferred time is kept apart too,
for BI, but counts as time in the stage (the SPEC excludes only paused time).

Each is also counted in working days of mainland China (SPEC §8.4), in the business time zone,
when it ends: a visit's working days, less those it spent paused. Paused working days are None
when not known (pauses ended before the read model counted them; a rebuild counts them).
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from contracts.workdays import working_days_between


class EntryKind(StrEnum):
    CREATED = "created"
    ADVANCED = "advanced"
    REVERTED = "reverted"


class ExitKind(StrEnum):
    ADVANCED = "advanced"
    REVERTED = "reverted"
    WON = "won"
    LOST = "lost"
    VOIDED = "voided"


@dataclass(slots=True)
class OpenVisit:
    """The visit an opportunity is in now, as its state carries it."""

    visit_no: int
    stage: str
    stage_index: int | None
    entered_at: datetime
    entered_version: int
    entry_kind: str  # an EntryKind value
    paused_seconds: float = 0.0
    deferred_seconds: float = 0.0
    paused_working_days: float | None = 0.0


@dataclass(frozen=True, slots=True)
class VisitOf:
    """The opportunity a visit belongs to, with the facts that never change (kept on each
    visit so the dwell figures need no join)."""

    opportunity_id: str
    pipeline_id: str
    type: str
    tier: str
    ownership: str
    created_at: datetime


def visit_row(
    of: VisitOf,
    visit: OpenVisit,
    zone: ZoneInfo,
    exit_at: datetime | None = None,
    exit_version: int | None = None,
    exit_kind: ExitKind | None = None,
    exited_to: str | None = None,
) -> dict[str, Any]:
    """The `bi_stage_visit` row of a visit, open (no exit) or completed."""
    dwell = working = None
    if exit_at is not None:
        dwell = (exit_at - visit.entered_at).total_seconds() - visit.paused_seconds
        if visit.paused_working_days is not None:
            whole = working_days_between(visit.entered_at, exit_at, zone)
            working = whole - visit.paused_working_days
    return {
        "opportunity_id": of.opportunity_id,
        "visit_no": visit.visit_no,
        "pipeline_id": of.pipeline_id,
        "stage": visit.stage,
        "stage_index": visit.stage_index,
        "entered_at": visit.entered_at,
        "entered_version": visit.entered_version,
        "entry_kind": visit.entry_kind,
        "exited_at": exit_at,
        "exited_version": exit_version,
        "exit_kind": None if exit_kind is None else exit_kind.value,
        "exited_to": exited_to,
        "paused_seconds": visit.paused_seconds,
        "deferred_seconds": visit.deferred_seconds,
        "dwell_seconds": dwell,
        "paused_working_days": visit.paused_working_days,
        "working_days": working,
        "type": of.type,
        "tier": of.tier,
        "ownership": of.ownership,
        "created_at": of.created_at,
        "voided_at": None,
    }


def seconds_between(start: datetime | None, end: datetime) -> float:
    """Length of an interval that may not have started (then 0); never negative."""
    if start is None:
        return 0.0
    return max((end - start).total_seconds(), 0.0)
