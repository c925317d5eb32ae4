"""Soak: the whole system on PostgreSQL and the test broker under a steady mix of commands
over HTTP and leads over Kafka, with faults on a schedule — `kill -9` and restart of each
service, the broker paused, a projections consumer restarted so its group rebalances — then
the invariants of SPEC §7, each printed with its figure.

    .venv/bin/python bench/soak.py [--rate 300] [--minutes 10] [--leads-rate 20]
    .venv/bin/python bench/soak.py --short      # one minute at 60 commands/s (run in CI)

Exit code 0 when every invariant holds. The full run writes its figures to bench/RESULTS.md.
"""

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak_checks as checks  # noqa: E402
from launch import (  # noqa: E402
    TOKENS,
    Store,  # noqa: E402
    auth_file,
)
from results import write_section  # noqa: E402
from soak_load import SalesTeam, publish_leads  # noqa: E402
from soak_system import Service, System, soak_system  # noqa: E402

from contracts import topics  # noqa: E402
from projections.application import rebuild  # noqa: E402
from projections.settings import Settings as ProjectionSettings  # noqa: E402


@dataclass(frozen=True)
class Plan:
    rate: float
    seconds: float
    leads_rate: float
    stale_seconds: float
    pause_seconds: float
    drain_seconds: float
    max_active: int
    record: bool
    logs: Path | None = None


@dataclass
class Journal:
    """What happened during the run, for the report."""

    faults: list[str] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, line: str) -> None:
        stamped = f"t={time.monotonic() - self.started:6.1f}s  {line}"
        self.faults.append(stamped)
        print(stamped, flush=True)


def plan_from(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300, help="commands a second over HTTP")
    parser.add_argument("--minutes", type=float, default=10, help="how long the load runs")
    parser.add_argument("--leads-rate", type=float, default=20, help="qualified leads a second")
    parser.add_argument(
        "--stale-seconds", type=float, default=60, help="an SMB deal is reclaimed after this"
    )
    parser.add_argument("--short", action="store_true", help="one minute at 60/s; no RESULTS")
    parser.add_argument(
        "--logs", type=Path, help="keep the services' logs here (default: a temporary folder)"
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0 or args.leads_rate < 0 or args.stale_seconds <= 0:
        parser.error("--rate, --minutes and --stale-seconds must be > 0, --leads-rate >= 0")
    if args.short:
        return Plan(60, 60, 5, 20, 4, 240, 400, record=False, logs=args.logs)
    return Plan(
        args.rate,
        args.minutes * 60,
        args.leads_rate,
        args.stale_seconds,
        pause_seconds=15,
        drain_seconds=600,
        max_active=3000,
        record=True,
        logs=args.logs,
    )


def pipelines(url: str) -> dict[str, list[str]]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{url}/pipelines", headers={"Authorization": f"Bearer {TOKENS['viewer']}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
        body = orjson.loads(answer.read())
    return {p["id"]: [s["id"] for s in p["stages"]] for p in body["pipelines"]}


def faults(system: System, plan: Plan, journal: Journal) -> list[tuple[float, Callable[[], None]]]:
    """The schedule: (fraction of the run, what happens)."""

    def kill_and_restart(service: Service) -> Callable[[], None]:
        def fault() -> None:
            service.kill_hard()
            journal.note(f"kill -9 {service.name}")
            answering, ready = service.start()
            journal.note(
                f"{service.name} answering again after {answering:.1f} s, ready after {ready:.1f} s"
            )

        return fault

    def pause_broker() -> None:
        if not system.broker.pausable:
            journal.note("broker pause skipped: the broker is named, not ours to stop")
            return
        system.broker.pause()
        journal.note(f"broker paused (SIGSTOP) for {plan.pause_seconds:.0f} s")
        time.sleep(plan.pause_seconds)
        system.broker.resume()
        journal.note("broker resumed (SIGCONT)")

    def rebalance() -> None:
        consumer = system.projections[1]
        consumer.stop()
        journal.note(f"{consumer.name} stopped; its group rebalances")
        journal.note(f"{consumer.name} rejoined, ready after {consumer.start()[1]:.1f} s")

    return [
        (0.15, kill_and_restart(system.opportunity)),
        (0.30, kill_and_restart(system.projections[0])),
        (0.45, kill_and_restart(system.reminders)),
        (0.60, pause_broker),
        (0.75, rebalance),
    ]


async def run_load(system: System, plan: Plan, team: SalesTeam, journal: Journal) -> None:
    stopping, started = asyncio.Event(), time.monotonic()

    async def scheduled() -> None:
        for fraction, fault in faults(system, plan, journal):
            delay = started + fraction * plan.seconds - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
            await asyncio.to_thread(fault)

    async def sample_memory() -> None:
        while not stopping.is_set():
            for service in system.services:
                service.sample_rss()
            await asyncio.sleep(2)

    background = [
        asyncio.create_task(sample_memory()),
        asyncio.create_task(projection_lag(system.stores["projections"], team, journal, stopping)),
    ]
    journal.note(
        f"load: {plan.rate:.0f} commands/s and {plan.leads_rate:.0f} leads/s "
        f"for {plan.seconds:.0f} s"
    )
    await asyncio.gather(
        team.run(plan.seconds, stopping),
        publish_leads(system.broker.bootstrap, plan.leads_rate, plan.seconds, team, stopping),
        scheduled(),
    )
    stopping.set()
    await asyncio.gather(*background)
    journal.note("load stopped")


async def projection_lag(
    projections_url: str, team: SalesTeam, journal: Journal, stopping: asyncio.Event
) -> None:
    """Once a second: how long the newest command answered takes to show in the BI tables."""
    probed = 0
    async with await psycopg.AsyncConnection.connect(projections_url, autocommit=True) as conn:
        while not stopping.is_set():
            await asyncio.sleep(1)
            if len(team.tally.answered) == probed:
                continue
            probed = len(team.tally.answered)
            last = team.tally.answered[-1]
            while time.monotonic() < last.at + 300:
                found = await conn.execute(
                    "SELECT 1 FROM bi_event WHERE opportunity_id = %s AND version = %s",
                    (last.opportunity_id, last.version),
                )
                if await found.fetchone():
                    journal.lags.append(time.monotonic() - last.at)
                    break
                await asyncio.sleep(0.005)


def scalar(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0] or 0) if row else 0


def consumed(url: str, positions: str) -> int:
    """How many records of the events topic a consumer has stored as applied."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT sum(next_offset) FROM {positions} WHERE topic = %s",  # noqa: S608 - our table
            (topics.OPPORTUNITY_EVENTS,),
        ).fetchone()
    return int(row[0] or 0) if row else 0


def relay_lag(system: System) -> float:
    with urllib.request.urlopen(f"{system.opportunity.url}/metrics", timeout=10) as answer:  # noqa: S310 - loopback
        for line in answer.read().decode().splitlines():
            if line.startswith("oppstream_relay_lag "):
                return float(line.split()[1])
    return float("nan")


OVERDUE = (
    "SELECT count(*) FROM reminders_opportunity WHERE next_due_at < now() - interval '10 seconds'"
)


def drain(system: System, plan: Plan, journal: Journal) -> int:
    """Wait until the relay, both consumers and the scheduler have caught up; stop reminders
    (so nothing new is recorded) and wait for what it sent; the overdue timers it left."""

    def lagging(with_reminders: bool) -> dict[str, float]:
        """What has not caught up yet (empty when everything has)."""
        published = asyncio.run(
            checks.end_offsets(system.broker.bootstrap, topics.OPPORTUNITY_EVENTS)
        )
        reminders = system.stores["reminders"]
        behind = {
            "relay lag": relay_lag(system),
            "projections behind": published
            - consumed(system.stores["projections"], "projection_position"),
        }
        if with_reminders:
            behind |= {
                "reminders behind": published - consumed(reminders, "reminders_position"),
                "overdue timers": scalar(reminders, OVERDUE),
                "outbox": scalar(reminders, "SELECT count(*) FROM reminders_outbox"),
            }
        return {name: value for name, value in behind.items() if value}

    def wait(with_reminders: bool) -> None:
        deadline, streak = time.monotonic() + plan.drain_seconds, 0
        while streak < 2:
            behind = lagging(with_reminders)
            if behind and time.monotonic() > deadline:
                figures = ", ".join(f"{name} {value:g}" for name, value in behind.items())
                raise TimeoutError(f"not drained in {plan.drain_seconds:.0f} s: {figures}")
            streak = 0 if behind else streak + 1
            time.sleep(2)

    started = time.monotonic()
    wait(with_reminders=True)
    overdue = scalar(system.stores["reminders"], OVERDUE)
    system.reminders.stop()
    wait(with_reminders=False)
    journal.note(f"drained in {time.monotonic() - started:.1f} s; reminders stopped")
    return overdue


def verify(system: System, team: SalesTeam, overdue: int) -> list[checks.Check]:
    envelopes = checks.history(system.opportunity.url, TOKENS["service"])
    read = checks.read_topics(
        system.broker.bootstrap,
        topics.OPPORTUNITY_EVENTS,
        topics.OPPORTUNITY_COMMANDS,
        topics.REMINDERS,
        topics.LEADS_REJECTED,
    )
    fresh = Store("postgres", system.workdir)
    system.extra_stores.append(fresh)
    rebuilt_url = fresh.__enter__()
    settings = ProjectionSettings(projections_db_url=rebuilt_url, rules_file=system.rules)
    code = rebuild.run(system.opportunity.url, TOKENS["service"], settings, progress=False)
    if code != rebuild.OK:
        raise RuntimeError(f"the fresh rebuild failed with code {code}")
    return [
        checks.commands_durable(team.tally.answered, envelopes),
        checks.events_published(envelopes, read[topics.OPPORTUNITY_EVENTS]),
        *checks.projections_match(system.stores["projections"], rebuilt_url, envelopes),
        checks.one_active_per_customer(system.stores["projections"]),
        checks.reminders_once(system.stores["reminders"], read[topics.REMINDERS], overdue),
        checks.no_reclaim_after_progress(envelopes, read[topics.OPPORTUNITY_COMMANDS]),
        checks.leads_once(team.tally.leads, envelopes, read[topics.LEADS_REJECTED]),
    ]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def report(
    plan: Plan, team: SalesTeam, journal: Journal, system: System, found: list[checks.Check]
) -> str:
    tally = team.tally
    sent = sum(tally.statuses.values()) + tally.unavailable
    ok = len(tally.answered)
    refused = {k: v for k, v in sorted(tally.statuses.items()) if not k.split()[1].startswith("2")}
    lines = [
        f"- load: {plan.rate:.0f} commands/s for {plan.seconds:.0f} s, {plan.leads_rate:.0f} "
        f"leads/s; {sent:,} commands sent, {ok:,} answered 2xx "
        f"in {tally.elapsed:.0f} s ({ok / (tally.elapsed or 1):.0f}/s), {tally.unavailable:,} "
        "unanswered while a "
        f"service was down; refusals: "
        + (", ".join(f"{k} ×{v}" for k, v in refused.items()) or "none"),
        f"- leads: {len(tally.leads):,} published, {tally.lead_redeliveries:,} redelivered, "
        f"{tally.lead_duplicates:,} naming a customer with an active deal",
        f"- command latency (2xx): p50 {percentile(tally.latencies, 50) * 1000:.1f} ms, "
        f"p99 {percentile(tally.latencies, 99) * 1000:.1f} ms",
        f"- command → projection lag ({len(journal.lags)} probes): p50 "
        f"{percentile(journal.lags, 50) * 1000:.0f} ms, p99 "
        f"{percentile(journal.lags, 99) * 1000:.0f} ms, max "
        f"{max(journal.lags, default=0) * 1000:.0f} ms",
        "- peak RSS: " + ", ".join(f"{s.name} {s.peak_rss_mb:.0f} MB" for s in system.services),
        "",
        "Faults:",
        "",
        *(f"    {line}" for line in journal.faults),
        "",
        "| invariant | holds | figure |",
        "|---|---|---|",
        *(f"| {c.name} | {'yes' if c.passed else '**NO**'} | {c.figure} |" for c in found),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    plan = plan_from(argv)
    journal = Journal()
    with tempfile.TemporaryDirectory(prefix="oppstream-soak-") as tmp:
        workdir = plan.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        with soak_system(workdir, auth_file(workdir), plan.stale_seconds) as system:
            journal.note(f"system ready: broker {system.broker.bootstrap}, PostgreSQL stores")
            team = SalesTeam(
                system.opportunity.port,
                pipelines(system.opportunity.url),
                plan.rate,
                seed=11,
                max_active=plan.max_active,
            )
            asyncio.run(run_load(system, plan, team, journal))
            try:
                overdue = drain(system, plan, journal)
            except TimeoutError as exc:
                print(f"{report(plan, team, journal, system, [])}\n\nsoak: {exc}", file=sys.stderr)
                return 1
            found = verify(system, team, overdue)
            text = report(plan, team, journal, system, found)
    print("\n" + text)
    if plan.record:
        command = (
            f"python bench/soak.py --rate {plan.rate:.0f} --minutes {plan.seconds / 60:g} "
            f"--leads-rate {plan.leads_rate:g}"
        )
        write_section("Soak", command, text)
    failed = [c.name for c in found if not c.passed]
    if failed:
        print(f"\nsoak: {len(failed)} invariant(s) broken: {'; '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
