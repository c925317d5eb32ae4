"""Backtest: replay the recorded history under a candidate rules file and find what would
have fired and been reclaimed — publishing nothing.

The same engine as the live service (`reminders.domain.facts`, `reminders.domain.timers`,
`contracts.schedule`) runs on a simulated clock: events happen at their `occurred_at`, each
opportunity's timers fire when the clock passes their due time (overdue on computation: at
once, only the furthest ladder rung), and a reclaim pools the opportunity, so its later
timers follow from that. Reclamations the live service made (`OpportunityReclaimed` naming a
`command_id`) are the old rules' doing and are replaced by the simulation's own; a manager's
manual reclaim is history and is replayed. The history comes from
reminders.adapters.history; `oppstream reminders simulate` is reminders.entrypoints.backtest.
"""

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.rules import Rulebook
from contracts.schedule import TimerKind
from reminders.domain.facts import OpportunityFacts, evolve, reclaimed
from reminders.domain.timers import Firing, Planner, command_id_for


@dataclass(frozen=True, slots=True)
class Fired:
    """One timer the simulation fired."""

    reminder_id: str
    kind: TimerKind
    opportunity_id: str
    rule_id: str
    owner_id: str | None
    team_id: str | None
    due_at: datetime
    fired_at: datetime
    idle_days: float
    command_id: str | None


@dataclass
class Simulation:
    rules_version: str
    start: datetime
    end: datetime
    until: datetime
    events: int = 0
    opportunities: int = 0
    fired: list[Fired] = field(default_factory=list)

    @property
    def reclaims(self) -> list[Fired]:
        return [f for f in self.fired if f.kind is TimerKind.RECLAIM_DUE]

    def by(self, key: str) -> dict[str, Counter[TimerKind]]:
        table: dict[str, Counter[TimerKind]] = {}
        for f in self.fired:
            name = getattr(f, key) or "(none)"
            table.setdefault(name, Counter())[f.kind] += 1
        return dict(sorted(table.items()))


def simulate(
    rules: Rulebook,
    zone: ZoneInfo,
    history: Iterable[Envelope],
    start: datetime,
    end: datetime,
    now: datetime,
) -> Simulation:
    """Replay `history` (in recording order) from its beginning; report the timers fired in
    [start, end). The clock stops at `now`: what would have fired, not what will."""
    planner = Planner(rules, zone)
    until = min(end, now)
    result = Simulation(rules.version, start, end, until)
    facts: dict[str, OpportunityFacts] = {}
    fired_ids: set[str] = set()
    looks: dict[str, datetime | None] = {}
    heap: list[tuple[datetime, int, str]] = []
    tie = itertools.count()

    def look_at(opportunity_id: str, moment: datetime | None) -> None:
        looks[opportunity_id] = moment
        if moment is not None:
            heapq.heappush(heap, (moment, next(tie), opportunity_id))

    def fire_before(limit: datetime) -> None:
        while heap and heap[0][0] < limit:
            at, _, oid = heapq.heappop(heap)
            if looks.get(oid) != at:
                continue  # an event moved this opportunity's timers since
            current = facts[oid]
            after = current
            for firing in planner.fire(current, at):
                if firing.reminder_id in fired_ids:
                    continue
                fired_ids.add(firing.reminder_id)
                if start <= at < end:
                    result.fired.append(_fired(current, firing, at))
                if firing.kind is TimerKind.RECLAIM_DUE:
                    after = reclaimed(after)
            facts[oid] = after
            look_at(oid, planner.next_look(after, at))

    recorded = list(enumerate(history))
    result.events = len(recorded)
    # Each opportunity's events never go back in time, so this keeps its versions in order.
    for _, envelope in sorted(recorded, key=lambda item: (item[1].occurred_at, item[0])):
        moment = envelope.occurred_at
        if moment >= until:
            break
        fire_before(moment)
        if _live_reclaim(envelope):
            continue
        before = facts.get(envelope.opportunity_id)
        try:
            after = evolve(before, envelope, 0)
        except ValidationError:
            continue
        if after is None or after is before:
            continue
        facts[envelope.opportunity_id] = after
        look_at(envelope.opportunity_id, planner.first_look(after, moment))
    fire_before(until)
    result.opportunities = len(facts)
    return result


def _live_reclaim(envelope: Envelope) -> bool:
    return envelope.event_type == "OpportunityReclaimed" and bool(
        envelope.payload.get("command_id")
    )


def _fired(facts: OpportunityFacts, firing: Firing, at: datetime) -> Fired:
    command = {
        TimerKind.RECLAIM_DUE: "reclaim",
        TimerKind.RENEWAL_DUE: "create_renewal",
    }.get(firing.kind)
    return Fired(
        reminder_id=firing.reminder_id,
        kind=firing.kind,
        opportunity_id=facts.opportunity_id,
        rule_id=firing.rule_id,
        owner_id=facts.owner_id,
        team_id=facts.team_id,
        due_at=firing.due_at,
        fired_at=at,
        idle_days=round((at - facts.last_progress_at).total_seconds() / 86400, 2),
        command_id=command_id_for(firing.reminder_id, command) if command else None,
    )
