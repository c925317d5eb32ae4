"""Backtest: replay the recorded history under a candidate rules file and report what would
have fired and been reclaimed, per rule and per team — publishing nothing.

`oppstream reminders simulate --rules FILE --from D --to D` reads the opportunity service's
`GET /notifications` feed (a service or admin token), then runs the same engine as the live
service (`reminders.facts`, `reminders.timers`, `contracts.schedule`) on a simulated clock:
events happen at their `occurred_at`, each opportunity's timers fire when the clock passes
their due time (overdue on computation: at once, only the furthest ladder rung), and a
reclaim pools the opportunity, so its later timers follow from that. Reclamations the live
service made (`OpportunityReclaimed` naming a `command_id`) are the old rules' doing and are
replaced by the simulation's own; a manager's manual reclaim is history and is replayed.
"""

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from contracts.envelope import Envelope
from contracts.principals import auth_file_path, load_principals
from contracts.rules import Role, Rulebook, RulebookError, load_rulebook
from contracts.schedule import TimerKind, start_of_day
from contracts.settings import OppstreamSettings
from reminders.facts import OpportunityFacts, evolve, reclaimed
from reminders.timers import Firing, Planner, command_id_for

PAGE = 5000
KINDS = tuple(TimerKind)
SHOWN_RECLAIMS = 50


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


def fetch_history(
    source_url: str,
    token: str,
    transport: httpx.BaseTransport | None = None,
    page: int = PAGE,
) -> list[Envelope]:
    """Every recorded event, in recording order, from the opportunity service's feed."""
    found: list[Envelope] = []
    with httpx.Client(
        base_url=source_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60.0,
        transport=transport,
    ) as client:
        after = 0
        while True:
            answer = client.get("/notifications", params={"after": after, "limit": page})
            answer.raise_for_status()
            body = answer.json()
            items = body["items"]
            if not items:
                return found
            found.extend(Envelope.model_validate(item["envelope"]) for item in items)
            after = int(body["next_after"])


def service_token(auth_file: Path | None) -> str:
    """The token of the auth file's first `service` principal (else `admin`): what reads the
    history when the command line is given none."""
    principals = load_principals(auth_file_path(auth_file)).all
    for role in (Role.SERVICE, Role.ADMIN):
        for principal in principals:
            if principal.role is role:
                return principal.token
    raise LookupError("the auth file has no service or admin principal to read the history")


def render(simulation: Simulation, source: str, zone: ZoneInfo, console: Console) -> None:
    s = simulation
    console.print(
        f"[bold]Backtest[/bold] of rules {source} (version {s.rules_version}), "
        f"{_local(s.start, zone)} → {_local(s.end, zone)} ({zone.key}); "
        f"replayed {s.events} events of {s.opportunities} opportunities"
        + (f"; the clock stopped at now, {_local(s.until, zone)}" if s.until < s.end else "")
        + ". Nothing was published."
    )
    for title, key in (("Fired per rule", "rule_id"), ("Fired per team", "team_id")):
        table = Table(title=title)
        table.add_column(key.removesuffix("_id"))
        for kind in KINDS:
            table.add_column(kind.value, justify="right")
        table.add_column("total", justify="right")
        rows = s.by(key)
        total: Counter[TimerKind] = Counter()
        for name, counts in rows.items():
            total.update(counts)
            table.add_row(name, *(str(counts[k]) for k in KINDS), str(sum(counts.values())))
        table.add_row("all", *(str(total[k]) for k in KINDS), str(sum(total.values())))
        console.print(table)
    reclaims = sorted(s.reclaims, key=lambda f: (f.fired_at, f.opportunity_id))
    table = Table(title=f"Reclaimed into the pool ({len(reclaims)})")
    for column in ("fired at", "opportunity", "team", "owner", "rule", "idle days"):
        table.add_column(column)
    for f in reclaims[:SHOWN_RECLAIMS]:
        table.add_row(
            _local(f.fired_at, zone),
            f.opportunity_id,
            f.team_id or "-",
            f.owner_id or "-",
            f.rule_id,
            f"{f.idle_days:g}",
        )
    if len(reclaims) > SHOWN_RECLAIMS:
        table.add_row("…", f"{len(reclaims) - SHOWN_RECLAIMS} more", "", "", "", "")
    console.print(table)


def run(
    rules_path: Path,
    start: date,
    end: date,
    source_url: str,
    token: str,
    *,
    zone: ZoneInfo | None = None,
    now: datetime | None = None,
    console: Console | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """The command line's `reminders simulate`: both dates inclusive, whole days in the
    business time zone. 0 when done; 2 for a bad rules file or dates; 1 when the history
    cannot be read."""
    console = console or Console()
    try:
        rules = load_rulebook(rules_path)
        zone = zone or OppstreamSettings().zone
    except (RulebookError, ValidationError) as exc:
        console.print(f"oppstream: {exc}", markup=False)
        return 2
    if end < start:
        console.print(f"oppstream: --to {end} is before --from {start}", markup=False)
        return 2
    try:
        history = fetch_history(source_url, token, transport)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        console.print(
            f"oppstream: cannot read the history from {source_url}/notifications: {exc}",
            markup=False,
        )
        return 1
    simulation = simulate(
        rules,
        zone,
        history,
        start_of_day(start, zone),
        start_of_day(end + timedelta(days=1), zone),
        now or datetime.now(UTC),
    )
    render(simulation, str(rules_path), zone, console)
    return 0


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")
