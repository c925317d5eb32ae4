"""The soak's invariants (SPEC §7), each answered with the figure that shows it."""

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from soak_load import ACTIVE, Answered

from chassis.kafka.producing import partition_ends
from contracts.opportunity import PROGRESS_EVENTS
from projections.adapters.schema import EVENT_TABLES

# The read model the events decide (the projection_* bookkeeping left out).
BI_TABLES = tuple(name for name in EVENT_TABLES if name.startswith("bi_"))


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    figure: str


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any]


def history(url: str, token: str) -> list[dict[str, Any]]:
    """Every recorded event, in recording order, from the service's /notifications feed."""
    envelopes: list[dict[str, Any]] = []
    after = 0
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        while True:
            page = client.get("/notifications", params={"after": after, "limit": 10_000})
            page.raise_for_status()
            body = page.json()
            envelopes += [item["envelope"] for item in body["items"]]
            if not body["items"]:
                return envelopes
            after = body["next_after"]


async def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every record of `topic` from the start up to its end now, partition by partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=60000
    )
    await consumer.start()
    try:
        parts = await partitions(consumer, topic)
        ends = await partition_ends(consumer, parts)
        await consumer.seek_to_beginning(*parts)
        records: list[Record] = []
        while [p for p in parts if await consumer.position(p) < ends[p]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for part, found in batches.items():
                records += [
                    Record(part.partition, r.offset, r.key, _json(r.value))
                    for r in found
                    if r.offset < ends[part]
                ]
        return records
    finally:
        await consumer.stop()


async def partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await consumer.topics()  # fresh metadata
    return [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]


async def end_offsets(bootstrap: str, topic: str) -> int:
    """How many records `topic` holds, all partitions together."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=60000
    )
    await consumer.start()
    try:
        ends = await partition_ends(consumer, await partitions(consumer, topic))
        return sum(ends.values())
    finally:
        await consumer.stop()


def _json(value: bytes | None) -> dict[str, Any]:
    try:
        decoded = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def commands_durable(answered: list[Answered], envelopes: list[dict[str, Any]]) -> Check:
    recorded = {(e["opportunity_id"], e["version"]) for e in envelopes}
    missing = [a for a in answered if (a.opportunity_id, a.version) not in recorded]
    return Check(
        "every command answered 2xx is in the event store",
        not missing and bool(answered),
        f"{len(answered):,} answered 2xx, {len(answered) - len(missing):,} found in "
        f"/notifications, {len(missing)} missing",
    )


def events_published(envelopes: list[dict[str, Any]], published: list[Record]) -> Check:
    """Store versions contiguous per opportunity; each on the topic, first seen in order."""
    stored: dict[str, list[int]] = defaultdict(list)
    for e in envelopes:
        stored[e["opportunity_id"]].append(e["version"])
    gaps = sum(1 for v in stored.values() if sorted(v) != list(range(1, len(v) + 1)))
    seen: dict[str, set[int]] = defaultdict(set)
    out_of_order = redelivered = 0
    for record in sorted(published, key=lambda r: (r.partition, r.offset)):
        oid, version = record.value.get("opportunity_id"), record.value.get("version")
        if not isinstance(oid, str) or not isinstance(version, int):
            continue
        if version in seen[oid]:
            redelivered += 1
        elif len(seen[oid]) != version - 1:
            out_of_order += 1
        seen[oid].add(version)
    unpublished = sum(
        1 for oid, versions in stored.items() for v in versions if v not in seen.get(oid, ())
    )
    return Check(
        "every recorded event reached the events topic, in order",
        not (gaps or unpublished or out_of_order),
        f"{len(envelopes):,} events of {len(stored):,} opportunities; {gaps} with a version gap "
        f"in the store; {unpublished} not on the topic; {out_of_order} first seen out of order; "
        f"{redelivered:,} redelivered copies",
    )


def rows(url: str, table: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        return Counter(row[0] for row in conn.execute(f"SELECT t::text FROM {table} t"))  # noqa: S608 - our own table names


def projections_match(live: str, rebuilt: str, envelopes: list[dict[str, Any]]) -> list[Check]:
    differing = []
    counts = {}
    for table in BI_TABLES:
        ours, fresh = rows(live, table), rows(rebuilt, table)
        counts[table] = sum(ours.values())
        if ours != fresh:
            differing.append(
                f"{table} ({sum((ours - fresh).values())} extra, "
                f"{sum((fresh - ours).values())} missing)"
            )
    with psycopg.connect(live) as conn:
        applied, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM bi_event"
        ).fetchone() or (0, 0)
        poison = (conn.execute("SELECT count(*) FROM projection_poison").fetchone() or (0,))[0]
    table_figures = ", ".join(f"{t} {n:,}" for t, n in counts.items())
    return [
        Check(
            "projection tables equal a fresh rebuild, row for row",
            not differing,
            f"{table_figures}; differing: {', '.join(differing) or 'none'}",
        ),
        Check(
            "no event applied twice",
            applied == distinct == len(envelopes) and poison == 0,
            f"bi_event {applied:,} rows, {distinct:,} distinct event ids, {len(envelopes):,} "
            f"recorded; {poison} poison records",
        ),
    ]


def one_active_per_customer(projections_url: str) -> Check:
    with psycopg.connect(projections_url) as conn:
        (active,) = conn.execute(
            "SELECT count(*) FROM bi_opportunity WHERE status = ANY(%s)", (list(ACTIVE),)
        ).fetchone() or (0,)
        broken = conn.execute(
            "SELECT uscc, type, count(*) FROM bi_opportunity WHERE status = ANY(%s) "
            "GROUP BY uscc, type HAVING count(*) > 1",
            (list(ACTIVE),),
        ).fetchall()
    return Check(
        "at most one active opportunity per (uscc, type)",
        not broken,
        f"{active:,} active opportunities; {len(broken)} (uscc, type) with more than one",
    )


def reminders_once(reminders_url: str, published: list[Record], overdue_at_stop: int) -> Check:
    with psycopg.connect(reminders_url) as conn:
        fired = conn.execute(
            "SELECT reminder_id, opportunity_id, rule_id, kind, due_at, reminder IS NOT NULL, "
            "EXISTS (SELECT 1 FROM reminders_outbox o WHERE o.reminder_id = f.reminder_id) "
            "FROM reminders_fired f"
        ).fetchall()
    fired_ids = Counter(row[0] for row in fired)
    per_due = Counter((row[1], row[2], row[3], row[4]) for row in fired)
    on_topic = Counter(r.value.get("reminder_id") for r in published)
    twice = sum(1 for n in fired_ids.values() if n > 1) + sum(1 for n in per_due.values() if n > 1)
    pending = sum(1 for row in fired if row[6])
    unsent = sum(1 for row in fired if row[5] and not row[6] and row[0] not in on_topic)
    strangers = sum(1 for rid in on_topic if rid not in fired_ids)
    kinds = Counter(row[3] for row in fired)
    return Check(
        "each due reminder fired exactly once",
        not (twice or unsent or strangers or overdue_at_stop) and bool(fired),
        f"{len(fired):,} fired ({', '.join(f'{k} {n:,}' for k, n in sorted(kinds.items()))}); "
        f"{twice} fired twice; {unsent} lost (not on crm.reminders nor in the outbox); "
        f"{pending} still in the outbox when it stopped; {strangers} on the topic but not "
        f"fired; {sum(on_topic.values()) - len(on_topic):,} redelivered copies; "
        f"{overdue_at_stop} overdue timers left when it stopped",
    )


def no_reclaim_after_progress(envelopes: list[dict[str, Any]], commands: list[Record]) -> Check:
    based_on = {
        c.value["command_id"]: c.value["based_on_version"]
        for c in commands
        if c.value.get("command") == "reclaim"
    }
    progress: dict[str, list[int]] = defaultdict(list)
    reclaims = []
    for e in envelopes:
        if e["event_type"] in PROGRESS_EVENTS:
            progress[e["opportunity_id"]].append(e["version"])
        command_id = e["payload"].get("command_id")
        if e["event_type"] == "OpportunityReclaimed" and command_id:
            reclaims.append((e["opportunity_id"], e["version"], command_id))
    wrong = sum(
        1
        for oid, version, command_id in reclaims
        if command_id not in based_on
        or any(based_on[command_id] < v < version for v in progress[oid])
    )
    return Check(
        "no reclaim applied after progress",
        wrong == 0,
        f"{len(based_on):,} reclaim commands sent by reminders, {len(reclaims):,} applied, "
        f"{wrong} applied although the opportunity had progressed",
    )


def leads_once(
    leads: Iterable[str], envelopes: list[dict[str, Any]], rejected: list[Record]
) -> Check:
    created = Counter(
        e["payload"].get("lead_id")
        for e in envelopes
        if e["event_type"] == "OpportunityCreated" and e["payload"].get("lead_id")
    )
    answered = {r.value.get("lead_id") for r in rejected}
    published = set(leads)
    twice = sum(1 for n in created.values() if n > 1)
    unanswered = sum(1 for lead in published if lead not in created and lead not in answered)
    return Check(
        "each lead created at most one opportunity, none unanswered",
        not (twice or unanswered),
        f"{len(published):,} leads published; {len(created):,} opportunities from leads; "
        f"{len(answered):,} rejected; {twice} created twice; {unanswered} unanswered",
    )


def read_topics(bootstrap: str, *names: str) -> dict[str, list[Record]]:
    async def read_all() -> list[list[Record]]:
        return [await read_topic(bootstrap, name) for name in names]

    return dict(zip(names, asyncio.run(read_all()), strict=True))
