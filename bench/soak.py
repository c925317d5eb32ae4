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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak_checks as checks  # noqa: E402
from launch import (  # noqa: E402
    TOKENS,
    Store,  # noqa: E402
    auth_file,
)
from results import write_section  # noqa: E402
from soak_load import SalesTeam, publish_leads, republish_leads  # noqa: E402
from soak_system import Service, System, frozen, soak_system  # noqa: E402

from chassis.kafka.producing import ensure_topics  # noqa: E402
from chassis.settings import OppstreamSettings  # noqa: E402
from contracts import topics  # noqa: E402
from opportunity.settings import Settings as OpportunitySettings  # noqa: E402
from projections.application import rebuild  # noqa: E402
from projections.settings import Settings as ProjectionSettings  # noqa: E402

# The topics the checks read; after the broker lost its log, what the lost log held (read just
# before) and what the new one holds.
CHECKED_TOPICS = (
    topics.OPPORTUNITY_EVENTS,
    topics.OPPORTUNITY_COMMANDS,
    topics.REMINDERS,
    topics.LEADS_REJECTED,
)
# The opportunity service's consumer groups (its default settings) and what they read: they
# keep their positions as Kafka commits.
OPPORTUNITY_GROUPS = {
    str(OpportunitySettings.model_fields["intake_group"].default): topics.LEADS_QUALIFIED,
    str(OpportunitySettings.model_fields["commands_group"].default): topics.OPPORTUNITY_COMMANDS,
}
# SPEC §7: every read model current within 60 s of the broker answering again.
RECOVERY_SECONDS = 60.0


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
class Wipe:
    """The broker's log lost mid-run: what the old log held, how the system recovered."""

    old_log: checks.TopicLog
    old_epoch: str | None
    leads_republished: int = 0
    republished_after: float | None = None  # broker back → relay lag 0 in a new log epoch
    current_after: float | None = None  # broker back → every read model current
    events: int = 0  # the store's history when they were
    behind: dict[str, float] = field(default_factory=dict)  # what was not, if they never were
    said_rereading: list[str] = field(default_factory=list)  # services whose /readyz said so
    losses: dict[str, float] = field(default_factory=dict)  # log losses each service counted
    waited: float = 0.0  # how long the soak waited for them
    leads_sent: int = 0  # leads the lead feed had sent when the broker was killed
    # consumer group → partitions committed past the new log's end, of how many
    stranded: dict[str, tuple[int, int]] = field(default_factory=dict)

    def recovery(self) -> str:
        relay = (
            f"relay lag 0 in a new log epoch {self.republished_after:.1f} s"
            if self.republished_after is not None
            else "relay never at lag 0 in a new log epoch"
        )
        if self.current_after is None:
            late = ", ".join(f"{k} {v:g}" for k, v in self.behind.items())
            return (
                f"{relay} and read models NOT current {self.waited:.0f} s after the broker "
                f"answered again (behind: {late})"
            )
        return (
            f"{relay} and every read model current {self.current_after:.1f} s after the "
            f"broker answered again (a history of {self.events:,} events)"
        )


@dataclass
class Journal:
    """What happened during the run, for the report."""

    faults: list[str] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    wipe: Wipe | None = None

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


def faults(
    system: System, plan: Plan, team: SalesTeam, journal: Journal
) -> list[tuple[float, Callable[[], None]]]:
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
        if not system.broker.ours:
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

    def wipe_log() -> None:
        if not system.broker.ours:
            journal.note("broker log wipe skipped: the broker is named, not ours to kill")
            return
        wipe_broker_log(system, plan, team, journal)

    return [
        (0.15, kill_and_restart(system.opportunity)),
        (0.30, kill_and_restart(system.projections[0])),
        (0.45, kill_and_restart(system.reminders)),
        (0.60, pause_broker),
        (0.75, rebalance),
        (0.85, wipe_log),
    ]


def wipe_broker_log(system: System, plan: Plan, team: SalesTeam, journal: Journal) -> None:
    """Kill the broker (SIGKILL) and start it empty on the same port, under load; then, as a
    lead service would, send again the leads that have no answer; then wait until every read
    model is current, and say how long that took from the broker answering again."""
    broker, started = system.broker, time.monotonic()
    old_epoch = relay_epoch(system)
    store = checks.History(system.opportunity.url, TOKENS["service"])
    old = checks.read_log(broker.bootstrap, CHECKED_TOPICS)
    store.catch_up()
    old.extend(checks.read_log(broker.bootstrap, CHECKED_TOPICS, after=old))  # short the freeze
    read = time.monotonic() - started
    # With the producers frozen the last records the old log acknowledged are read too, so
    # the checks see whatever it acknowledged although it is lost. They stay frozen until
    # the empty broker has its topics: the embedded broker acknowledges a record sent to a
    # topic it does not have and drops it (a Kafka broker refuses it until the topic exists).
    team.leads_flowing.clear()
    try:
        with frozen(system.opportunity, system.reminders):
            froze = time.monotonic()
            while True:
                more = checks.read_log(broker.bootstrap, CHECKED_TOPICS, after=old)
                old.extend(more)
                if not any(more.records.values()):
                    break
            leads_sent = len(team.tally.leads)
            broker.kill()
            journal.wipe = wipe = Wipe(old, old_epoch, leads_sent=leads_sent)
            journal.note(
                "broker killed (SIGKILL), its log lost: "
                + ", ".join(f"{name} {old.count(name):,}" for name in CHECKED_TOPICS)
                + f" records, read before (in {read:.1f} s, the last of them with opportunity "
                "and reminders frozen)"
            )
            back = broker.start_empty()
            back_at = time.monotonic()
            journal.note(f"empty broker answering on {broker.bootstrap} after {back:.1f} s")
            asyncio.run(ensure_topics(OppstreamSettings(kafka_bootstrap=broker.bootstrap)))
            held = time.monotonic() - froze
    finally:
        team.leads_flowing.set()
    journal.note(
        f"its topics created; opportunity, reminders and the lead feed resumed after {held:.1f} s"
    )

    store.catch_up()
    rejected = checks.read_topics(broker.bootstrap, topics.LEADS_REJECTED)[topics.LEADS_REJECTED]
    answered = store.from_leads | {
        r.value.get("lead_id") for r in [*old.records[topics.LEADS_REJECTED], *rejected]
    }
    again = [lead for lead in team.tally.leads[:leads_sent] if lead not in answered]
    asyncio.run(republish_leads(broker.bootstrap, team.tally, again))
    wipe.leads_republished = len(again)
    journal.note(
        f"{len(again)} leads sent again: sent before the wipe, answered by neither an "
        "opportunity nor a rejection"
    )
    await_current(system, store, wipe, back_at, plan.drain_seconds)
    journal.note(wipe.recovery())
    wipe.stranded = {
        group: asyncio.run(checks.committed_past_end(broker.bootstrap, group, topic))
        for group, topic in OPPORTUNITY_GROUPS.items()
    }
    journal.note(
        "the opportunity service's consumer groups then: "
        + ", ".join(
            f"{group} committed past the log's end on {past} of {count} partitions"
            for group, (past, count) in wipe.stranded.items()
        )
    )


def await_current(
    system: System, store: checks.History, wipe: Wipe, since: float, seconds: float
) -> None:
    """Until every read model is current: the relay has republished the history in a new log
    epoch (relay lag 0); then, as of a moment: both consumers' positions at the new log's
    ends in that epoch, and bi_opportunity holding every opportunity at the version the
    store had. Gives up after `seconds`, saying what is behind."""
    deadline = since + seconds

    def listen() -> None:
        for service in system.services:
            if service.name not in wipe.said_rereading and reading_again(service):
                wipe.said_rereading.append(service.name)

    while time.monotonic() < deadline:
        listen()
        epoch, lag = relay_epoch(system), relay_lag(system)
        if epoch is None or epoch == wipe.old_epoch or lag:
            wipe.behind = {
                "relay lag": lag,
                "relay in the lost log's epoch": epoch == wipe.old_epoch,
            }
            time.sleep(0.2)
            continue
        if wipe.republished_after is None:
            wipe.republished_after = time.monotonic() - since
        store.catch_up()
        wanted = dict(store.versions)
        ends = asyncio.run(checks.end_offsets(system.broker.bootstrap, topics.OPPORTUNITY_EVENTS))
        reach = min(deadline, time.monotonic() + 10)  # a normal lag behind that moment
        while True:
            listen()
            wipe.behind = read_models_behind(system, epoch, ends, wanted)
            if not wipe.behind:
                wipe.current_after, wipe.events = time.monotonic() - since, len(store.envelopes)
                wipe.losses = log_losses(system)
                return
            if time.monotonic() > reach:
                break
            time.sleep(0.2)
    wipe.losses, wipe.waited = log_losses(system), time.monotonic() - since


def read_models_behind(
    system: System, epoch: str, ends: dict[int, int], wanted: dict[str, int]
) -> dict[str, float]:
    """What has not reached the new log's `ends` in `epoch`, or the store's `wanted` versions."""
    behind: dict[str, float] = {}
    for name, url, table in (
        ("projections", system.stores["projections"], "projection_position"),
        ("reminders", system.stores["reminders"], "reminders_position"),
    ):
        marks = positions(url, table)
        late = sum(1 for p, end in ends.items() if end and not _reached(marks.get(p), end, epoch))
        if late:
            behind[f"{name} partitions behind"] = late
    projected = bi_versions(system.stores["projections"])
    late = sum(1 for oid, version in wanted.items() if projected.get(oid, 0) < version)
    if late:
        behind["opportunities behind in bi_opportunity"] = late
    return behind


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


def _reached(mark: tuple[int, str | None] | None, end: int, epoch: str | None) -> bool:
    return mark is not None and mark[0] >= end and (epoch is None or mark[1] == epoch)


def positions(url: str, table: str) -> dict[int, tuple[int, str | None]]:
    """A consumer's stored positions on the events topic: partition → (next offset, epoch)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT partition, next_offset, log_epoch FROM {table} WHERE topic = %s",  # noqa: S608 - our table
            (topics.OPPORTUNITY_EVENTS,),
        ).fetchall()
    return {int(p): (int(o), e) for p, o, e in rows}


def bi_versions(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id::text, version FROM bi_opportunity").fetchall()
    return {oid: int(version) for oid, version in rows}


def relay_epoch(system: System) -> str | None:
    """The log epoch the relay publishes in (None while it has published nothing in it)."""
    try:
        with psycopg.connect(system.stores["opportunity"]) as conn:
            rows = conn.execute("SELECT DISTINCT epoch FROM oppstream_relay_log").fetchall()
    except pg_errors.UndefinedTable:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def metric(url: str, name: str) -> float:
    """The sum of a metric's samples, whatever their labels (NaN when there is none)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:  # noqa: S310 - loopback
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in answer.read().decode().splitlines()
            if line.split("{", 1)[0].split(" ", 1)[0] == name
        ]
    return sum(values) if values else float("nan")


def log_losses(system: System) -> dict[str, float]:
    """How many log losses each service counted (the relay: times it started a new epoch)."""
    found = {"relay": metric(system.opportunity.url, "oppstream_relay_log_losses_total")}
    for service in [system.opportunity, *system.projections, system.reminders]:
        found[service.name] = metric(service.url, "oppstream_log_losses_total")
    return found


def reading_again(service: Service) -> bool:
    """Whether the service's /readyz lists partitions it reads again after a lost log."""
    try:
        with urllib.request.urlopen(f"{service.url}/readyz", timeout=5) as answer:  # noqa: S310 - loopback
            body: Any = orjson.loads(answer.read())
    except urllib.error.HTTPError as refused:  # 503 while not ready: the body says why
        body = orjson.loads(refused.read() or b"{}")
    except OSError:
        return False
    return bool(_find(body, "reading_again"))


def _find(body: Any, key: str) -> Any:
    """`key`'s value anywhere in a JSON body (the services nest their details differently)."""
    if isinstance(body, dict):
        if body.get(key):
            return body[key]
        return next((v for v in (_find(x, key) for x in body.values()) if v), None)
    return None


def scalar(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0] or 0) if row else 0


def behind(url: str, table: str, ends: dict[int, int], epoch: str | None) -> int:
    """How many records of the events topic a consumer has yet to store as applied (a
    partition whose position is of another log epoch counts whole)."""
    marks, late = positions(url, table), 0
    for partition, end in ends.items():
        mark = marks.get(partition)
        if not _reached(mark, end, epoch):
            same_log = mark is not None and (epoch is None or mark[1] == epoch)
            late += end - mark[0] if mark is not None and same_log else end
    return late


def relay_lag(system: System) -> float:
    return metric(system.opportunity.url, "oppstream_relay_lag")


OVERDUE = (
    "SELECT count(*) FROM reminders_opportunity WHERE next_due_at < now() - interval '10 seconds'"
)


def drain(system: System, plan: Plan, journal: Journal) -> int:
    """Wait until the relay, both consumers and the scheduler have caught up; stop reminders
    (so nothing new is recorded) and wait for what it sent; the overdue timers it left."""

    def lagging(with_reminders: bool) -> dict[str, float]:
        """What has not caught up yet (empty when everything has)."""
        epoch = relay_epoch(system)
        ends = asyncio.run(checks.end_offsets(system.broker.bootstrap, topics.OPPORTUNITY_EVENTS))
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
    envelopes = checks.history(system.opportunity.url, TOKENS["service"])
    final = checks.read_log(system.broker.bootstrap, CHECKED_TOPICS).records
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
