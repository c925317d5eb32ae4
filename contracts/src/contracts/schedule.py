"""When an opportunity's reminders, reclamation, revisit and renewal fall due (SPEC §6).

Pure: the opportunity service uses it for `next_reminder_at` / `reclaim_at`, the reminders
service for its timers, the backtest for what would have fired. One engine, three users.
A ladder step counts calendar time or working days of mainland China (SPEC §8.4) from the
last progress, through `workdays.later` in the business time zone.
"""

from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from contracts.durations import format_span
from contracts.opportunity import Status
from contracts.rules import ReminderRule, Rulebook
from contracts.workdays import Span, later


class TimerKind(StrEnum):
    FOLLOW_UP = "follow_up"
    STALE_WARNING = "stale_warning"
    ESCALATION = "escalation"
    RECLAIM_DUE = "reclaim_due"
    REVISIT_DUE = "revisit_due"
    PAUSE_ENDED = "pause_ended"
    RENEWAL_DUE = "renewal_due"


# The staleness ladder, nearest rung first; of several overdue rungs only the furthest fires.
LADDER: tuple[tuple[TimerKind, str], ...] = (
    (TimerKind.FOLLOW_UP, "follow_up_after"),
    (TimerKind.STALE_WARNING, "warn_after"),
    (TimerKind.ESCALATION, "escalate_after"),
    (TimerKind.RECLAIM_DUE, "reclaim_after"),
)


@dataclass(frozen=True)
class Facts:
    """What the schedule of one opportunity depends on."""

    type: str
    tier: str
    ownership: str
    stage: str
    status: Status
    last_progress_at: datetime
    paused_until: date | None = None
    revisit_on: date | None = None
    contract_end_on: date | None = None


@dataclass(frozen=True)
class Timer:
    kind: TimerKind
    rule_id: str
    due_at: datetime
    detail: dict[str, str]


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """Midnight at the start of `day` in the business time zone."""
    return datetime.combine(day, time.min, tzinfo=zone)


def timers(rules: Rulebook, facts: Facts, zone: ZoneInfo) -> list[Timer]:
    """Every timer the opportunity has now, in due order (overdue ones included)."""
    found: list[Timer] = []
    if facts.status == Status.OPEN:
        rule = rules.reminders.rule_for(facts.tier, facts.ownership, facts.type, facts.stage)
        if rule is not None:
            found.extend(_ladder(rule, facts, rules.version, zone))
    elif facts.status == Status.PAUSED and facts.paused_until is not None:
        found.append(
            Timer(
                TimerKind.PAUSE_ENDED,
                "pause",
                start_of_day(facts.paused_until, zone),
                _explain(facts, rules.version, until=facts.paused_until.isoformat()),
            )
        )
    elif facts.status == Status.DEFERRED and facts.revisit_on is not None:
        found.append(
            Timer(
                TimerKind.REVISIT_DUE,
                "revisit",
                start_of_day(facts.revisit_on, zone) - rules.reminders.revisit_lead,
                _explain(facts, rules.version, revisit_on=facts.revisit_on.isoformat()),
            )
        )
    elif facts.status == Status.WON and facts.contract_end_on is not None:
        found.append(
            Timer(
                TimerKind.RENEWAL_DUE,
                "renewal",
                start_of_day(facts.contract_end_on, zone) - rules.renewal.create_before,
                _explain(facts, rules.version, contract_end_on=facts.contract_end_on.isoformat()),
            )
        )
    return sorted(found, key=lambda t: t.due_at)


def due(found: list[Timer], now: datetime) -> list[Timer]:
    """The timers to fire at `now`: of the overdue ladder rungs only the furthest."""
    overdue = [t for t in found if t.due_at <= now]
    rungs = [t for t in overdue if t.kind in _LADDER_KINDS]
    others = [t for t in overdue if t.kind not in _LADDER_KINDS]
    return others + rungs[-1:]


def next_reminder(found: list[Timer], now: datetime) -> Timer | None:
    """The next timer to fire after `now` (a renewal is no reminder to the owner)."""
    upcoming = [t for t in found if t.due_at > now and t.kind is not TimerKind.RENEWAL_DUE]
    return min(upcoming, key=lambda t: t.due_at, default=None)


def next_reminder_at(found: list[Timer], now: datetime) -> datetime | None:
    timer = next_reminder(found, now)
    return None if timer is None else timer.due_at


def reclaim_timer(found: list[Timer]) -> Timer | None:
    return next((t for t in found if t.kind is TimerKind.RECLAIM_DUE), None)


def reclaim_at(found: list[Timer]) -> datetime | None:
    timer = reclaim_timer(found)
    return None if timer is None else timer.due_at


_LADDER_KINDS = frozenset(kind for kind, _ in LADDER)


def _ladder(rule: ReminderRule, facts: Facts, version: str, zone: ZoneInfo) -> list[Timer]:
    # The explanation's common part is built once per ladder; the reminders service computes
    # ladders for thousands of opportunities per scheduler round.
    common = _explain(facts, version)
    rungs = []
    for kind, field in LADDER:
        after: Span | None = getattr(rule, field)
        if after is not None:
            rungs.append(
                Timer(
                    kind,
                    rule.id,
                    later(facts.last_progress_at, after, zone),
                    {**common, field: _formatted(after)},
                )
            )
    return rungs


@lru_cache(maxsize=1024)
def _formatted(span: Span) -> str:
    """A rule's span as the rules file can write it (`P7D`, `3wd`); rules have few."""
    return format_span(span)


def _explain(facts: Facts, version: str, **extra: str) -> dict[str, str]:
    return {
        "rules_version": version,
        "tier": facts.tier,
        "ownership": facts.ownership,
        "type": facts.type,
        "stage": facts.stage,
        "status": facts.status.value,
        "last_progress_at": facts.last_progress_at.isoformat(),
        **extra,
    }
