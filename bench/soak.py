"""Soak: the whole system on PostgreSQL and the test broker under a steady mix of commands
over HTTP and leads over Kafka, with faults on a schedule — `kill -9` and restart of each
service, the broker paused, a projections consumer restarted so its group rebalances, the
broker's log wiped (killed and started empty) — then the invariants of SPEC §7, each printed
with its figure.

    .venv/bin/python bench/soak.py [--rate 300] [--minutes 10] [--leads-rate 20]
    .venv/bin/python bench/soak.py --short      # a minute at 60 commands/s (run in CI)

Exit code 0 when every invariant holds. The full run writes its figures to bench/RESULTS.md.
"""

import argparse
import asyncio
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak_checks as checks  # noqa: E402
import soak_logs as logs  # noqa: E402
from launch import (  # noqa: E402
    TOKENS,
    Store,  # noqa: E402
    auth_file,
)
from results import write_section  # noqa: E402
from soak_faults import (  # noqa: E402
    CHECKED_TOPICS,
    behind,
    faults,
    relay_epoch,
    relay_lag,
    scalar,
)
from soak_journal import Journal, Plan, Wipe  # noqa: E402
from soak_load import SalesTeam, publish_leads  # noqa: E402
from soak_system import System, soak_system  # noqa: E402

from contracts import topics  # noqa: E402
from projections.entrypoints import rebuild  # noqa: E402
from projections.settings import Settings as ProjectionSettings  # noqa: E402

# SPEC §7: every read model current within 60 s of the broker answering again.
RECOVERY_SECONDS = 60.0


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


async def run_load(system: System, plan: Plan, team: SalesTeam, journal: Journal) -> None:
    """The load for the planned time, and on until the last fault is over and a little more
    (a fault runs late when a restart before it took long), so every fault meets the load."""
    stopping, started = asyncio.Event(), time.monotonic()

    async def scheduled() -> None:
        for fraction, fault in faults(system, plan, team, journal):
            delay = started + fraction * plan.seconds - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
            await asyncio.to_thread(fault)
        after_faults = max(2.0, plan.seconds / 20)
        await asyncio.sleep(max(after_faults, started + plan.seconds - time.monotonic()))
        stopping.set()

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
        f"for {plan.seconds:.0f} s or until the faults are over"
    )
    await asyncio.gather(
        team.run(stopping),
        publish_leads(system.broker.bootstrap, plan.leads_rate, team, stopping),
        scheduled(),
    )
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


OVERDUE = (
    "SELECT count(*) FROM reminders_opportunity WHERE next_due_at < now() - interval '10 seconds'"
)


def drain(system: System, plan: Plan, journal: Journal) -> int:
    """Wait until the relay, both consumers and the scheduler have caught up; stop reminders
    (so nothing new is recorded) and wait for what it sent; the overdue timers it left."""

    def lagging(with_reminders: bool) -> dict[str, float]:
        """What has not caught up yet (empty when everything has)."""
        epoch = relay_epoch(system)
        ends = asyncio.run(logs.end_offsets(system.broker.bootstrap, topics.OPPORTUNITY_EVENTS))
        reminders = system.stores["reminders"]
        late = {
            "relay lag": relay_lag(system),
            "projections behind": behind(
                system.stores["projections"], "projection_position", ends, epoch
            ),
        }
        if with_reminders:
            late |= {
                "reminders behind": behind(reminders, "reminders_position", ends, epoch),
                "overdue timers": scalar(reminders, OVERDUE),
                "outbox": scalar(reminders, "SELECT count(*) FROM reminders_outbox"),
            }
        return {name: value for name, value in late.items() if value}

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


def verify(system: System, team: SalesTeam, journal: Journal, overdue: int) -> list[checks.Check]:
    """Every invariant. After a wipe the checks read the old log (read just before the wipe)
    and the new one together, as a consumer that had read the old one would have seen them;
    the reminders' facts are checked against the new log alone (what they lack must be there)."""
    envelopes = logs.history(system.opportunity.url, TOKENS["service"])
    final = logs.read_log(system.broker.bootstrap, CHECKED_TOPICS).records
    read = {
        name: [*(journal.wipe.old_log.records[name] if journal.wipe else []), *final[name]]
        for name in CHECKED_TOPICS
    }
    truth, epoch = checks.replay(envelopes), relay_epoch(system)
    fresh = Store("postgres", system.workdir)
    system.extra_stores.append(fresh)
    rebuilt_url = fresh.__enter__()
    settings = ProjectionSettings(projections_db_url=rebuilt_url, rules_file=system.rules)
    code = rebuild.run(system.opportunity.url, TOKENS["service"], settings, progress=False)
    if code != rebuild.OK:
        raise RuntimeError(f"the fresh rebuild failed with code {code}")
    reminders = system.stores["reminders"]
    return [
        checks.commands_durable(team.tally.answered, envelopes),
        checks.events_published(
            envelopes,
            journal.wipe.old_log.records[topics.OPPORTUNITY_EVENTS] if journal.wipe else [],
            final[topics.OPPORTUNITY_EVENTS],
            epoch,
        ),
        *checks.projections_match(system.stores["projections"], rebuilt_url, envelopes),
        checks.one_active_per_customer(system.stores["projections"]),
        checks.reminders_once(reminders, read[topics.REMINDERS], overdue),
        checks.reminders_match(reminders, truth, final[topics.OPPORTUNITY_EVENTS], epoch),
        checks.no_reclaim_after_progress(envelopes, read[topics.OPPORTUNITY_COMMANDS]),
        checks.commands_taken(
            reminders,
            envelopes,
            truth,
            journal.wipe.old_log.records[topics.OPPORTUNITY_COMMANDS] if journal.wipe else [],
            final[topics.OPPORTUNITY_COMMANDS],
        ),
        checks.leads_once(
            team.tally.leads,
            envelopes,
            read[topics.LEADS_REJECTED],
            journal.wipe.leads_sent if journal.wipe else len(team.tally.leads),
        ),
        recovered(journal),
    ]


def recovered(journal: Journal) -> checks.Check:
    name = (
        f"every read model current within {RECOVERY_SECONDS:.0f} s of the broker answering "
        "again after it lost its log"
    )
    wipe = journal.wipe
    if wipe is None:
        return checks.Check(name, True, "not measured: the broker is named, its log not wiped")
    losses = ", ".join(f"{k} {v:g}" for k, v in wipe.losses.items())
    rereading = ", ".join(wipe.said_rereading) or "none"
    return checks.Check(
        name,
        wipe.current_after is not None and wipe.current_after <= RECOVERY_SECONDS,
        f"{wipe.recovery()}; {wipe.leads_republished} leads sent again; /readyz said "
        f"re-reading: {rereading}; log losses counted: {losses}",
    )


def wiped(wipe: Wipe | None) -> str:
    if wipe is None:
        return "- broker log wipe: not done (the broker is named)"
    old = ", ".join(f"{name} {wipe.old_log.count(name):,}" for name in CHECKED_TOPICS)
    return (
        f"- broker log wipe: {wipe.recovery()}; {wipe.leads_republished} leads sent again; "
        f"the lost log held {old} records, read just before: the reminders, reclaim and "
        "rejection checks read them with the new log's, the events check reads the new log alone"
    )


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
        f"- load: {plan.rate:.0f} commands/s, {plan.leads_rate:.0f} leads/s for "
        f"{tally.elapsed:.0f} s (planned {plan.seconds:.0f} s, on until the faults were over); "
        f"{sent:,} commands sent, {ok:,} answered 2xx "
        f"({ok / (tally.elapsed or 1):.0f}/s), {tally.unavailable:,} unanswered while a "
        f"service was down; refusals: "
        + (", ".join(f"{k} ×{v}" for k, v in refused.items()) or "none"),
        f"- leads: {len(tally.leads):,} published, {tally.lead_redeliveries:,} redelivered, "
        f"{tally.lead_duplicates:,} naming a customer with an active deal, "
        f"{tally.leads_republished:,} sent again after the broker lost its log, "
        f"{tally.lead_send_failures:,} sends never acknowledged",
        f"- command latency (2xx): p50 {percentile(tally.latencies, 50) * 1000:.1f} ms, "
        f"p99 {percentile(tally.latencies, 99) * 1000:.1f} ms",
        f"- command → projection lag ({len(journal.lags)} probes): p50 "
        f"{percentile(journal.lags, 50) * 1000:.0f} ms, p99 "
        f"{percentile(journal.lags, 99) * 1000:.0f} ms, max "
        f"{max(journal.lags, default=0) * 1000:.0f} ms",
        "- peak RSS: " + ", ".join(f"{s.name} {s.peak_rss_mb:.0f} MB" for s in system.services),
        wiped(journal.wipe),
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
            found = verify(system, team, journal, overdue)
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
