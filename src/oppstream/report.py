"""What the demo prints: the funnel per pipeline against standards, win rates, forecast,
reminders and reclamations — read from the services' own HTTP APIs and topics."""

import asyncio
import contextlib
import time
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.table import Table

from contracts import topics
from oppstream.plans import ZONE, quarter_of, sprint_id
from oppstream.up import System

CAUGHT_UP_SECONDS = 90


def print_report(console: Console, system: System, token: str, started: float) -> dict[str, Any]:
    """Print the figures once the projections have caught up; the funnel printed."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers, timeout=30) as http:
        funnel = _caught_up_funnel(http, system)
        console.print(
            f"\n[bold]Funnel[/bold] as of {funnel['as_of']} "
            f"(printed {time.monotonic() - started:.0f} s after start)"
        )
        for pipeline in funnel["pipelines"]:
            console.print(funnel_table(pipeline))
        projections = system.url("projections")
        quarter, _, _ = quarter_of(datetime.now(ZONE).date())
        for title, path in (
            ("Win rates", "/win-rates"),
            ("Forecast", "/forecast"),
            (f"Attainment 目标达成 {quarter} (won amount)", _attainment_path(quarter)),
            (f"Competition 销售竞赛 {sprint_id(quarter)}", _standings_path(quarter)),
            ("Deferrals by reason 未来机会", "/deferrals"),
        ):
            answer = http.get(f"{projections}{path}")
            if answer.status_code == 200:
                console.print(generic_table(title, answer.json()))
    kinds = asyncio.run(reminders_fired(system.bootstrap))
    table = Table(title="Reminders fired (crm.reminders)")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind, count in sorted(kinds.items()):
        table.add_row(kind, str(count))
    console.print(table)
    console.print(f"reclamations: {kinds.get('reclaim_due', 0)} reclaim_due reminders fired")
    return funnel


def _attainment_path(quarter: str) -> str:
    return f"/attainment?period={quarter}&metric=won_amount"


def _standings_path(quarter: str) -> str:
    return f"/competitions/{sprint_id(quarter)}/standings"


def _caught_up_funnel(http: httpx.Client, system: System) -> dict[str, Any]:
    """The funnel once it counts every opportunity the opportunity service has."""
    opportunities = system.url("opportunity")
    projections = system.url("projections")
    deadline = time.monotonic() + CAUGHT_UP_SECONDS
    while True:
        total = http.get(f"{opportunities}/opportunities", params={"limit": 1}).json()["total"]
        funnel: dict[str, Any] = http.get(f"{projections}/funnel").json()
        counted = sum(p["stages"][0]["reached"] for p in funnel["pipelines"] if p["stages"])
        if counted >= total or time.monotonic() > deadline:
            return funnel
        time.sleep(0.5)


def funnel_table(pipeline: dict[str, Any]) -> Table:
    """One pipeline: reached per stage, conversion rate and days against the standards."""
    table = Table(title=f"{pipeline['pipeline_id']} ({pipeline['type']}) — won {pipeline['won']}")
    columns = ("stage", "reached", "→ next", "industry", "company", "days", "std days", "open")
    for column in columns:
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage in pipeline["stages"]:
        rate, days = stage.get("standard") or {}, stage.get("standard_days") or {}
        open_visits = stage["open_visits"]
        table.add_row(
            stage.get("label", stage["stage"]),
            str(stage["reached"]),
            _flag(_percent(stage["conversion_rate"]), stage.get("below_standard")),
            _percent(rate.get("industry")),
            _percent(rate.get("company")),
            _flag(_days(stage["conversion_days"]), stage.get("below_standard_days")),
            _days(days.get("industry")),
            f"{open_visits['count']} ({_days(open_visits['mean_age_days'])})"
            if isinstance(open_visits, dict)
            else str(open_visits),
        )
    return table


def _flag(text: str, below: bool | None) -> str:
    """Figures that fall short of the industry standard, in red."""
    return f"[red]{text} ▼[/red]" if below else text


def generic_table(title: str, data: Any) -> Table:
    """A table of the first list of rows found in a JSON answer."""
    rows = _rows(data)
    table = Table(title=title)
    columns = [k for k in (rows[0] if rows else {}) if not isinstance(rows[0][k], dict | list)]
    for column in columns:
        table.add_column(column)
    for row in rows[:24]:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    return table


def _rows(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data
    if isinstance(data, dict):
        for value in data.values():
            found = _rows(value)
            if found:
                return found
    return []


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} d"


async def reminders_fired(bootstrap: str, seconds: float = 3) -> Counter[str]:
    """Reminders on `crm.reminders` so far, by kind."""
    consumer = AIOKafkaConsumer(
        topics.REMINDERS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=40000,
    )
    await consumer.start()
    kinds: Counter[str] = Counter()
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    with contextlib.suppress(Exception):
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    reminder = orjson.loads(record.value)
                    if reminder["reminder_id"] not in seen:
                        seen.add(reminder["reminder_id"])
                        kinds[reminder["kind"]] += 1
    await consumer.stop()
    return kinds
