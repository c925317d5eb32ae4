"""`oppstream demo`: `up`, then a simulated lead service and sales team drive a few hundred
opportunities through a compressed year, then the funnel and the reminders are printed and
the dashboard stays up until Ctrl-C."""

import asyncio
import random
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from rich.console import Console

from chassis.auth import auth_file_path, load_principals
from contracts import topics
from contracts.rules import Rulebook
from opportunity.domain.opportunity import Opportunity
from oppstream.plans import Plan, set_plan
from oppstream.report import print_report
from oppstream.scenes import act_out, demo_rules
from oppstream.simulation import TEAMS, Deal, customer, plan
from oppstream.sink import WebhookSink, print_deliveries, summarise, webhook_sink
from oppstream.up import (
    System,
    _configured_auth,
    announce,
    stop_on_signals,
    system_up,
    workbench_line,
)

CONCURRENCY = 24


@dataclass
class Tally:
    commands: Counter[str]
    refused: Counter[str]

    def __init__(self) -> None:
        self.commands, self.refused = Counter(), Counter()


@dataclass
class Year:
    """The simulated year: the deals planned, their opportunity ids, the commands counted."""

    deals: list[Deal]
    ids: dict[str, str]
    tally: Tally
    plan: Plan


def tokens() -> dict[str, str]:
    credentials = load_principals(auth_file_path(_configured_auth())).credentials
    return {c.id: c.token for c in credentials}


def run_demo(deals: int, minutes: float, seed: int, stay: bool) -> int:
    console = Console()
    stop_on_signals()
    started = time.monotonic()
    try:
        with webhook_sink(secrets.token_hex(16)) as sink:
            rules = demo_rules(Path("var"), sink)
            with system_up(hold=("reminders",)) as system:
                return _run(console, system, rules, sink, (deals, minutes, seed), stay, started)
    except KeyboardInterrupt:
        console.print("\noppstream: stopped")
        return 0
    except (TimeoutError, RuntimeError) as exc:
        print(f"oppstream: {exc}", file=sys.stderr)
        return 1


def _run(
    console: Console,
    system: System,
    rules: Rulebook,
    sink: WebhookSink,
    year_of: tuple[int, float, int],
    stay: bool,
    started: float,
) -> int:
    """The simulated year, the scenes and the figures; then, with `stay`, the system stays up
    until a service ends or Ctrl-C."""
    deals, minutes, seed = year_of
    year = asyncio.run(simulate(system, rules, deals, minutes, seed, console))
    act_out(console, system.url("opportunity"), tokens(), year.deals, year.ids)
    tally = year.tally
    announce(system)
    console.print(
        f"\n[bold]{sum(tally.commands.values())} commands[/bold] "
        f"({', '.join(f'{k} {v}' for k, v in tally.commands.most_common())}); "
        f"refused: {dict(tally.refused) or 'none'}"
    )
    print_report(console, system, tokens()["admin"], started)
    if any(c.url.startswith(sink.url("/")) for c in rules.delivery.channels):
        admin = tokens()["admin"]
        print_deliveries(console, summarise(sink, system.url("reminders"), admin))
    if not stay:
        return 0
    console.print(
        f"\nDashboard: [bold]{system.url('projections')}/[/bold] "
        f"(token of 'viewer': {tokens()['viewer']}).\n"
        f"Workbench: [bold]{workbench_line(system)}[/bold]. Ctrl-C stops everything."
    )
    while all(p.poll() is None for p in system.services.values()):
        time.sleep(0.5)
    return 1


async def simulate(
    system: System, rules: Rulebook, count: int, minutes: float, seed: int, console: Console
) -> Year:
    """Import a year of history, then act live for `minutes`."""
    now = datetime.now(UTC)
    deals = plan(rules, now - timedelta(minutes=1), count, seed)
    keys = tokens()
    tally = Tally()
    async with _client(system, keys) as http:
        console.print(f"[bold]importing[/bold] {len(deals)} opportunities of the last year …")
        gate = asyncio.Semaphore(CONCURRENCY)
        leads = [d for d in deals if d.via_lead]
        ids = await _leads(http, system.bootstrap, leads, tally)
        await asyncio.gather(*(_replay(http, gate, ids[d.key], d, tally) for d in leads))
        # Renewals and resales once their customers' first contracts are won (type rules).
        created = [d for d in deals if not d.via_lead]
        ids |= await _creates(http, created, tally)
        await asyncio.gather(
            *(_replay(http, gate, ids[d.key], d, tally) for d in created if d.key in ids)
        )
        sales_plan = await set_plan(system.url("opportunity"), keys, deals, now)
        console.print(
            f"[bold]plan[/bold] {sales_plan.quarter}: {len(sales_plan.targets)} targets set, "
            f"competitions {', '.join(sales_plan.competitions) or 'none'}"
            + (f"; refused: {'; '.join(sales_plan.refused)}" if sales_plan.refused else "")
        )
        if "reminders" not in system.services:
            # Started after the import, it sees the year as it ended: it reminds and reclaims
            # what is stale now, not what was stale half-way through the import.
            console.print("[bold]reminders[/bold] service starting on the imported history …")
            await asyncio.to_thread(system.start_held, "reminders")
    console.print(f"[bold]live[/bold] for {minutes:g} minute(s): reps at work, leads arriving …")
    # A client of its own: the import's connections idled while the reminders service started,
    # and one the server closes for idling as it is reused fails the request (ReadError).
    async with _client(system, keys) as http:
        await _live(http, system, keys, deals, ids, minutes, seed, tally)
    return Year(deals, ids, tally, sales_plan)


def _client(system: System, keys: dict[str, str]) -> httpx.AsyncClient:
    """A client of the opportunity service, as the service principal."""
    return httpx.AsyncClient(
        base_url=system.url("opportunity"),
        headers={"Authorization": f"Bearer {keys['service']}"},
        timeout=30,
    )


async def _leads(
    http: httpx.AsyncClient, bootstrap: str, deals: list[Deal], tally: Tally
) -> dict[str, str]:
    """The deals of new customers, as leads through Kafka; their ids once created."""
    ids: dict[str, str] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=40000)
    await producer.start()
    try:
        for deal in deals:
            await producer.send(
                topics.LEADS_QUALIFIED, key=deal.key.encode(), value=_lead(deal, deal.created_at)
            )
            ids[deal.key] = str(Opportunity.new_id("lead", deal.key))
            tally.commands["lead"] += 1
        await producer.flush()
    finally:
        await producer.stop()
    await _wait_for(http, list(ids.values()))
    return ids


async def _creates(http: httpx.AsyncClient, deals: list[Deal], tally: Tally) -> dict[str, str]:
    """The renewals and resales of existing customers, created over HTTP; their ids."""
    ids: dict[str, str] = {}
    for deal in deals:
        answer = await http.post("/opportunities", json=_create_body(deal))
        _count(tally, "create", answer)
        if answer.status_code == 201:
            ids[deal.key] = answer.json()["id"]
    return ids


def _lead(deal: Deal, qualified_at: datetime) -> bytes:
    return orjson.dumps(
        {
            "lead_id": deal.key,
            "qualified_at": qualified_at.isoformat(),
            "customer": deal.customer,
            "owner_id": deal.owner_id,
            "team_id": deal.team_id,
            "expected_amount": f"{deal.amount}.00",
            "currency": "CNY",
            "source": "website",
        }
    )


def _create_body(deal: Deal) -> dict[str, Any]:
    return {
        "type": deal.type,
        "customer": deal.customer,
        "owner_id": deal.owner_id,
        "team_id": deal.team_id,
        "title": f"{deal.customer['name']} {deal.type}",
        "amount": f"{deal.amount}.00",
        "expected_close_on": (deal.created_at + timedelta(days=90)).date().isoformat(),
        "occurred_at": deal.created_at.isoformat(),
    }


async def _wait_for(http: httpx.AsyncClient, ids: list[str], seconds: float = 120) -> None:
    """Until the intake has created every lead's opportunity."""
    deadline = time.monotonic() + seconds
    missing = list(ids)
    while missing:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the intake did not create {len(missing)} opportunities in time")
        found = await asyncio.gather(*(http.get(f"/opportunities/{i}") for i in missing[:50]))
        done = {
            i for i, answer in zip(missing[:50], found, strict=True) if answer.status_code == 200
        }
        missing = [i for i in missing if i not in done]
        if missing and not done:
            await asyncio.sleep(0.2)


async def _replay(
    http: httpx.AsyncClient, gate: asyncio.Semaphore, oid: str, deal: Deal, tally: Tally
) -> None:
    async with gate:
        for step in deal.steps:
            body = {**step.body, "occurred_at": step.at.isoformat()}
            answer = await http.post(f"/opportunities/{oid}/{step.command}", json=body)
            _count(tally, step.command, answer)


async def _live(
    http: httpx.AsyncClient,
    system: System,
    keys: dict[str, str],
    deals: list[Deal],
    ids: dict[str, str],
    minutes: float,
    seed: int,
    tally: Tally,
) -> None:
    """Reps log calls and move their open deals on; the lead service sends new leads."""
    rng = random.Random(seed + 1)
    managers = {team: f"manager-{team}" for team in TEAMS}
    # The deals the import left open (some may since have been reclaimed into the pool).
    open_deals = [d for d in deals if not d.steps or d.steps[-1].command not in ("win", "lose")]
    producer = AIOKafkaProducer(bootstrap_servers=system.bootstrap, acks="all")
    await producer.start()
    deadline = time.monotonic() + minutes * 60
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            if n % 10 == 0:
                lead = Deal(
                    key=f"live-{seed}-{n}",
                    type="new",
                    customer=customer(rng),
                    owner_id=rng.choice(TEAMS["east"]),
                    team_id="east",
                    created_at=datetime.now(UTC),
                    amount=rng.randrange(20_000, 900_000, 1000),
                    via_lead=True,
                )
                await producer.send(
                    topics.LEADS_QUALIFIED,
                    key=lead.key.encode(),
                    value=_lead(lead, lead.created_at),
                )
                tally.commands["lead"] += 1
            else:
                deal = rng.choice(open_deals)
                actor = deal.owner_id if deal.owner_id in keys else managers[deal.team_id]
                headers = {"Authorization": f"Bearer {keys[actor]}"}
                kind = rng.choice(("call", "visit", "meeting", "email"))
                answer = await http.post(
                    f"/opportunities/{ids[deal.key]}/follow-ups",
                    json={"kind": kind, "note": "live: customer asked for a demo"},
                    headers=headers,
                )
                _count(tally, "follow-ups (live)", answer)
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()


def _count(tally: Tally, command: str, answer: httpx.Response) -> None:
    if answer.status_code < 300:
        tally.commands[command] += 1
    else:
        tally.refused[f"{command} {answer.status_code}"] += 1
