"""Tallies: the read model's figures pre-summed per creation day and segment; pure.

Each opportunity state stands for a few facts (a key and counts: in the cohort at this stage
and status; open in this stage with this expected close month; won in this month), each
completed stage visit for one, each creation or win for a credit. A report sums the facts of
the opportunities it covers, so the store keeps their sums per key, changed by every event:
the facts of the state before leave, those of the state after join. The same changes are kept
again per day, hour and five-minute slot they occurred (`event_day`, `event_hour`,
`event_slot`, in the business time zone), so a report as of an earlier instant sums the days
before its day, the hours of its day before its hour and the slots of its hour before its slot
(adapters/tallied.py reads the rest of that slot exactly: the shorter the slot, the fewer
events a report as of an instant replays; the hours keep the slots summed few).

Every measure is an integer or an amount: microseconds, not float seconds, so the sums do not
depend on the order they were added in (a rebuild's equal the live tables', row for row).
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from projections.domain.state import ACTIVE, WON, OpportunityState, history_values

CREATED, WON_EVENT = "OpportunityCreated", "OpportunityWon"
CREDITED = (CREATED, WON_EVENT)
# Text key columns hold '' for "none" (a key column cannot be null).
NONE = ""
MICROS = 1_000_000
SLOT_MINUTES = 5
CENT = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Key = tuple[Any, ...]
Measures = tuple[Any, ...]
Fact = tuple[str, Key, Measures]  # a tally's name, a key in it, the measures
Row = tuple[Any, ...]


def micros(seconds: float | None) -> int:
    """Float seconds (of instants and durations kept to the microsecond) as whole microseconds."""
    return 0 if seconds is None else round(seconds * MICROS)


def epoch_micros(at: datetime | None) -> int:
    if at is None:
        return 0
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds


def cents(amount: Decimal | None) -> int:
    """An amount in whole cents, rounded as the NUMERIC(…, 2) columns round it."""
    return 0 if amount is None else int(amount.quantize(CENT, ROUND_HALF_UP) * 100)


def slot_of(at: datetime, zone: ZoneInfo) -> datetime:
    """The start of the five-minute slot (in the business time zone) that holds `at`; its
    `date()` is the business day."""
    local = at.astimezone(zone)
    return local.replace(minute=local.minute - local.minute % SLOT_MINUTES, second=0, microsecond=0)


def month_text(day: date | None) -> str:
    return NONE if day is None else f"{day.year:04d}-{day.month:02d}"


@dataclass(frozen=True, slots=True)
class Fixed:
    """What never changes after an opportunity's creation, with its creation day."""

    created_day: date
    pipeline_id: str
    type: str
    tier: str
    ownership: str


def fixed_of(state: OpportunityState, zone: ZoneInfo) -> Fixed:
    day = state.created_at.astimezone(zone).date()
    return Fixed(day, state.pipeline_id, state.type, state.tier, state.ownership)


# The tallies of opportunity states, each with its key and measure columns.
COHORT = "cohort"  # every state: reach, open visits' ages, open amounts (SPEC §5)
FORECAST = "forecast"  # active states by expected close month (SPEC §5 forecast)
OWNED = "owned"  # active states by close month, owner and team (SPEC §9.1 weighted_open)
WINS = "wins"  # won states by the month won
VISITS = "visits"  # completed stage visits (conversion days)
CREDITS = "credits"  # creations and wins, by day, owner and team (SPEC §9.1 actuals)


def state_facts(f: Fixed, h: Sequence[Any], zone: ZoneInfo) -> list[Fact]:
    """The facts of one state: `h` is its HISTORY_FIELDS, in their order."""
    (
        status,
        stage,
        _stage_index,
        furthest,
        entered_at,
        paused_seconds,
        paused_at,
        owner_id,
        team_id,
        amount,
        currency,
        close_on,
        _last_progress_at,
        closed_at,
        won_amount,
        override,
    ) = h
    segment = (f.created_day, f.pipeline_id, f.type, f.tier, f.ownership)
    if status not in ACTIVE:
        facts: list[Fact] = [
            (COHORT, (*segment, status, furthest, stage, currency), (1, 0, 0, 0, 0, 0))
        ]
        if status == WON:
            won_month = NONE if closed_at is None else month_text(closed_at.astimezone(zone))
            facts.append((WINS, (*segment, won_month, currency), (1, cents(won_amount))))
        return facts
    money = cents(amount)
    paused = paused_at is not None
    month = month_text(close_on)
    facts = [
        (
            COHORT,
            (*segment, status, furthest, stage, currency),
            (
                1,
                money,
                epoch_micros(entered_at),
                micros(paused_seconds),
                int(paused),
                epoch_micros(paused_at),
            ),
        ),
        (
            FORECAST,
            (*segment, stage, month, currency, override or NONE),
            (1, money, int(amount is None)),
        ),
    ]
    if close_on is not None:
        facts.append(
            (
                OWNED,
                (month, f.pipeline_id, stage, owner_id or NONE, team_id or NONE, currency),
                (1, money),
            )
        )
    return facts


def visit_fact(row: Mapping[str, Any], zone: ZoneInfo, voided: bool) -> Fact:
    """The fact of a completed stage visit (a `bi_stage_visit` row)."""
    working = row["working_days"]
    return (
        VISITS,
        (
            row["created_at"].astimezone(zone).date(),
            row["pipeline_id"],
            row["stage"],
            row["type"],
            row["tier"],
            row["ownership"],
            row["exit_kind"],
            voided,
        ),
        (
            1,
            micros(row["dwell_seconds"]),
            micros(row["paused_seconds"]),
            int(working is not None),
            micros(None if working is None else working * 86_400),
        ),
    )


def credit_fact(
    event_type: str,
    occurred_at: datetime,
    owner_id: str | None,
    team_id: str | None,
    currency: str,
    won_amount: Decimal | None,
    zone: ZoneInfo,
    *,
    voided: bool,
) -> Fact:
    """The credit of a creation or a win to the owner and team after it."""
    day = occurred_at.astimezone(zone).date()
    return (
        CREDITS,
        (day, event_type, owner_id or NONE, team_id or NONE, currency, voided),
        (1, cents(won_amount)),
    )


@dataclass
class Changes:
    """What a batch adds to the tallies: by tally, slot the change occurred (`slot_of`), key;
    `only`: the tallies kept (None: all)."""

    found: dict[tuple[str, datetime, Key], list[Any]] = field(default_factory=dict)
    only: frozenset[str] | None = None

    def add(self, slot: datetime, fact: Fact, sign: int) -> None:
        name, key, measures = fact
        if self.only is not None and name not in self.only:
            return
        k = (name, slot, key)
        known = self.found.get(k)
        if known is None:
            self.found[k] = list(measures) if sign > 0 else [-m for m in measures]
        elif sign > 0:
            for i, m in enumerate(measures):
                known[i] += m
        else:
            for i, m in enumerate(measures):
                known[i] -= m

    def move(self, slot: datetime, before: Iterable[Fact], after: Iterable[Fact]) -> None:
        """The facts `before` leave and those `after` join; a fact in both stays (most of a
        state's facts outlive an event), its sums untouched."""
        joining = list(after)
        for fact in before:
            if fact in joining:
                joining.remove(fact)
            else:
                self.add(slot, fact, -1)
        for fact in joining:
            self.add(slot, fact, 1)

    def totals(self) -> dict[str, list[Row]]:
        """Each tally's non-zero changes in total (key, then measures)."""
        found: dict[str, dict[Key, list[Any]]] = defaultdict(dict)
        for (name, _, key), measures in self.found.items():
            known = found[name].get(key)
            if known is None:
                found[name][key] = list(measures)
            else:
                known[:] = [a + m for a, m in zip(known, measures, strict=True)]
        return {name: [(*k, *m) for k, m in rows.items() if any(m)] for name, rows in found.items()}

    def rows(self) -> dict[str, tuple[list[Row], list[Row], list[Row], list[Row]]]:
        """Each tally's non-zero changes in total, by day, by hour and by slot, in key order
        (writers lock rows in one order)."""
        totals: dict[str, dict[Key, list[Any]]] = defaultdict(dict)
        days: dict[str, dict[Key, list[Any]]] = defaultdict(dict)
        hours: dict[str, dict[Key, list[Any]]] = defaultdict(dict)
        slots: dict[str, list[Row]] = defaultdict(list)
        for (name, slot, key), measures in self.found.items():
            if not any(measures):
                continue
            slots[name].append((slot, *key, *measures))
            hour = slot.replace(minute=0)
            for sums, k in (
                (totals[name], key),
                (days[name], (slot.date(), *key)),
                (hours[name], (hour, *key)),
            ):
                known = sums.get(k)
                if known is None:
                    sums[k] = list(measures)
                else:
                    for i, m in enumerate(measures):
                        known[i] += m
        return {
            name: (_rows(totals[name]), _rows(days[name]), _rows(hours[name]), sorted(slots[name]))
            for name in slots
        }


def _rows(sums: dict[Key, list[Any]]) -> list[Row]:
    return sorted((*k, *m) for k, m in sums.items() if any(m))


# A state's facts are a function of its fixed facts and these of its HISTORY_FIELDS (all but
# `stage_index` and `last_progress_at`): a follow-up changes none of them.
_READ = (0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15)


_read: Callable[[Sequence[Any]], tuple[Any, ...]] = itemgetter(*_READ)


Before = tuple[tuple[Any, ...], list[Fact]]  # what the facts read of a state, and the facts


def state_changes(
    changes: Changes,
    zone: ZoneInfo,
    before: Mapping[str, Before],
    fixed: Mapping[str, Fixed],
    history: Iterable[Sequence[Any]],
) -> None:
    """Each history row's facts replace those of the state before it, in the slot it occurred.

    `before`: each stored opportunity's state as `facts_before` gives it (none for a new one);
    `history`: `bi_opportunity_version` rows (opportunity_id, version, occurred_at, event_type,
    *fields), each opportunity's in version order."""
    last = dict(before)
    for row in history:
        opportunity_id, occurred_at, event_type, h = row[0], row[2], row[3], row[4:]
        slot = slot_of(occurred_at, zone)
        read = _read(h)
        previous = last.get(opportunity_id)
        if previous is None or previous[0] != read:
            facts = state_facts(fixed[opportunity_id], h, zone)
            changes.move(slot, [] if previous is None else previous[1], facts)
            last[opportunity_id] = (read, facts)
        if event_type in CREDITED:
            credit = credit_fact(
                event_type, occurred_at, h[7], h[8], h[10], h[14], zone, voided=False
            )
            changes.add(slot, credit, 1)


def facts_before(state: OpportunityState, zone: ZoneInfo) -> Before:
    h = history_values(state)
    return _read(h), state_facts(fixed_of(state, zone), h, zone)
