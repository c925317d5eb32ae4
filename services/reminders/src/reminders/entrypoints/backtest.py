"""`oppstream reminders simulate --rules FILE --from D --to D`: read the history, backtest the
rules file on it (reminders.application.backtest) and print what would have fired and been
reclaimed, per rule and per team."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from chassis.settings import OppstreamSettings
from contracts.rules import RulebookError, load_rulebook
from contracts.schedule import TimerKind, start_of_day
from reminders.adapters.history import fetch_history
from reminders.application.backtest import Simulation, simulate

KINDS = tuple(TimerKind)
SHOWN_RECLAIMS = 50


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
