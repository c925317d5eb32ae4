"""The soak's faults on their schedule, the broker's log wiped above all, and the probes that
tell when every read model is current again."""

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
import soak_logs as logs
from launch import TOKENS
from psycopg import errors as pg_errors
from soak_journal import Journal, Plan, Wipe
from soak_load import SalesTeam, republish_leads
from soak_system import Service, System, frozen

from chassis.kafka.producing import ensure_topics
from chassis.settings import OppstreamSettings
from contracts import topics
from opportunity.settings import Settings as OpportunitySettings

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
    store = logs.History(system.opportunity.url, TOKENS["service"])
    old = logs.read_log(broker.bootstrap, CHECKED_TOPICS)
    store.catch_up()
    old.extend(logs.read_log(broker.bootstrap, CHECKED_TOPICS, after=old))  # short the freeze
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
                more = logs.read_log(broker.bootstrap, CHECKED_TOPICS, after=old)
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
    rejected = logs.read_topics(broker.bootstrap, topics.LEADS_REJECTED)[topics.LEADS_REJECTED]
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
        group: asyncio.run(logs.committed_past_end(broker.bootstrap, group, topic))
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
    system: System, store: logs.History, wipe: Wipe, since: float, seconds: float
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
        ends = asyncio.run(logs.end_offsets(system.broker.bootstrap, topics.OPPORTUNITY_EVENTS))
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
