"""An opportunity's timers under the rules, and what firing them sends (pure), to Kafka and to
the delivery channels.

The schedule itself is `contracts.schedule` — the same code gives the opportunity service its
`next_reminder_at` and `reclaim_at`. This module adds what the reminders service needs around
it: when to look at an opportunity next, the deterministic ids, the explanation (rule, rules
version, the facts that matched, idle days, the manager an escalation goes to) and the bytes
of the reminder and the command a timer sends.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, uuid5
from zoneinfo import ZoneInfo

import orjson

from chassis.auth import Principal
from contracts import schedule
from contracts.opportunity import Status
from contracts.rules import Role, Rulebook
from contracts.schedule import Timer, TimerKind
from reminders.domain.facts import OpportunityFacts

REMINDER_NAMESPACE = uuid5(NAMESPACE_URL, "https://oppstream/reminders")

_JSON = orjson.OPT_UTC_Z


def reminder_id_for(opportunity_id: str, rule_id: str, due_at: datetime) -> str:
    """The same (opportunity, rule, due time) always gives the same id: a repeat publish, a
    restart or another copy of the service can never make it a second reminder."""
    moment = due_at.astimezone(UTC).isoformat()
    return str(uuid5(REMINDER_NAMESPACE, f"{opportunity_id}/{rule_id}/{moment}"))


def command_id_for(reminder_id: str, command: str) -> str:
    return str(uuid5(REMINDER_NAMESPACE, f"{reminder_id}/{command}"))


@dataclass(frozen=True, slots=True)
class Firing:
    """One timer fired: the reminder (none for a renewal) and the command (reclaim, renewal)
    to publish, as bytes, so every repeat publish sends exactly the same message."""

    reminder_id: str
    opportunity_id: str
    partition: int
    kind: TimerKind
    rule_id: str
    team_id: str | None
    due_at: datetime
    fired_at: datetime
    reminder: bytes | None
    command: bytes | None
    owner_id: str | None = None
    # The delivery channels its reminder goes to (contracts.delivery), by id.
    channels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SentCommand:
    """A command a fired timer sent, with what its opportunity's facts say now."""

    opportunity_id: str
    reminder_id: str
    partition: int
    kind: TimerKind
    command: bytes
    status: Status
    last_progress_version: int


def still_wanted(sent: SentCommand) -> bool:
    """Whether a command sent before the broker lost its log must be sent again: it may never
    have reached the opportunity service and would still take effect. A reclaim, while the
    opportunity is open and has not progressed since the reminder was computed (a reclaim that
    was taken left it in the pool); a renewal, always (the opportunity service creates a
    renewal once, by an id it derives from the won opportunity's)."""
    if sent.kind is TimerKind.RENEWAL_DUE:
        return sent.status == Status.WON
    if sent.kind is TimerKind.RECLAIM_DUE:
        based_on = orjson.loads(sent.command)["based_on_version"]
        return sent.status == Status.OPEN and sent.last_progress_version <= based_on
    return False


class Planner:
    def __init__(
        self,
        rules: Rulebook,
        zone: ZoneInfo,
        managers: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.rules, self.zone = rules, zone
        self._managers = dict(managers or {})
        self._matches = {
            rule.id: rule.match.model_dump(exclude_none=True, mode="json")
            for rule in rules.reminders.rules
        }

    def timers(self, facts: OpportunityFacts) -> list[Timer]:
        return schedule.timers(self.rules, facts.schedule, self.zone)

    def first_look(self, facts: OpportunityFacts, now: datetime) -> datetime | None:
        """After an event: `now` if a timer is due already (overdue on computation fires at
        once; one that fired before is recognised by its id and not sent again), else the
        next due time, else None."""
        found = self.timers(facts)
        if schedule.due(found, now):
            return now
        return _after(found, now)

    def next_look(self, facts: OpportunityFacts, now: datetime) -> datetime | None:
        """After firing at `now`: the next due time, or None."""
        return _after(self.timers(facts), now)

    def fire(self, facts: OpportunityFacts, now: datetime) -> list[Firing]:
        """What fires at `now`: of the overdue ladder rungs only the furthest, plus a due
        pause end, revisit or renewal."""
        return self.look(facts, now)[0]

    def look(self, facts: OpportunityFacts, now: datetime) -> tuple[list[Firing], datetime | None]:
        """What fires at `now`, and when to look next."""
        found = self.timers(facts)
        firings = [self._firing(facts, timer, now) for timer in schedule.due(found, now)]
        return firings, _after(found, now)

    def managers_of(self, team_id: str | None) -> Sequence[str]:
        return self._managers.get(team_id, ()) if team_id is not None else ()

    def explain(self, facts: OpportunityFacts, timer: Timer, now: datetime) -> dict[str, Any]:
        """Why it fired: the rule, the rules-file version, the facts that matched, idle days."""
        idle = (now - facts.last_progress_at).total_seconds() / 86400
        detail: dict[str, Any] = {
            "rule_id": timer.rule_id,
            **timer.detail,
            "last_progress_version": facts.last_progress_version,
            "idle_days": round(idle, 2),
        }
        if timer.rule_id in self._matches and timer.kind in _LADDER:
            detail["match"] = self._matches[timer.rule_id]
        if timer.kind is TimerKind.ESCALATION:
            managers = list(self.managers_of(facts.team_id))
            detail["manager_id"] = managers[0] if managers else None
            detail["manager_ids"] = managers
        return detail

    def _firing(self, facts: OpportunityFacts, timer: Timer, now: datetime) -> Firing:
        rid = reminder_id_for(facts.opportunity_id, timer.rule_id, timer.due_at)
        detail = self.explain(facts, timer, now)
        reminder = None
        if timer.kind is not TimerKind.RENEWAL_DUE:
            reminder = orjson.dumps(
                {
                    "reminder_id": rid,
                    "kind": timer.kind.value,
                    "opportunity_id": facts.opportunity_id,
                    "owner_id": facts.owner_id,
                    "team_id": facts.team_id,
                    "rule_id": timer.rule_id,
                    "due_at": timer.due_at.astimezone(UTC),
                    "fired_at": now.astimezone(UTC),
                    "detail": detail,
                },
                option=_JSON,
            )
        command = None
        if timer.kind is TimerKind.RECLAIM_DUE:
            after = timer.detail.get("reclaim_after", "")
            command = orjson.dumps(
                {
                    "command_id": command_id_for(rid, "reclaim"),
                    "command": "reclaim",
                    "opportunity_id": facts.opportunity_id,
                    "reason": (
                        f"no progress for {detail['idle_days']} days: rule {timer.rule_id} "
                        f"reclaims after {after} (rules {self.rules.version})"
                    ),
                    "rule_id": timer.rule_id,
                    "issued_at": now.astimezone(UTC),
                    "based_on_version": facts.last_progress_version,
                },
                option=_JSON,
            )
        elif timer.kind is TimerKind.RENEWAL_DUE:
            command = orjson.dumps(
                {
                    "command_id": command_id_for(rid, "create_renewal"),
                    "command": "create_renewal",
                    "opportunity_id": facts.opportunity_id,
                    "issued_at": now.astimezone(UTC),
                },
                option=_JSON,
            )
        return Firing(
            reminder_id=rid,
            opportunity_id=facts.opportunity_id,
            partition=facts.partition,
            kind=timer.kind,
            rule_id=timer.rule_id,
            team_id=facts.team_id,
            due_at=timer.due_at,
            fired_at=now,
            reminder=reminder,
            command=command,
            owner_id=facts.owner_id,
            channels=()
            if reminder is None
            else self.rules.delivery.channels_for(timer.kind.value, facts.team_id, facts.tier),
        )


_LADDER = frozenset(kind for kind, _ in schedule.LADDER)


def _after(found: list[Timer], now: datetime) -> datetime | None:
    return min((t.due_at for t in found if t.due_at > now), default=None)


def managers_by_team(principals: Iterable[Principal]) -> dict[str, list[str]]:
    """Team → its managers' ids, in the auth file's order (escalations go to them)."""
    found: dict[str, list[str]] = {}
    for principal in principals:
        if principal.role is Role.MANAGER and principal.team_id is not None:
            found.setdefault(principal.team_id, []).append(principal.id)
    return found
