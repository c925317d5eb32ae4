"""The soak's invariants (SPEC §7), each answered with the figure that shows it."""

from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from typing import Any

import orjson
import psycopg
from soak_load import ACTIVE, Answered
from soak_logs import Record

from contracts import topics
from contracts.envelope import Envelope
from contracts.opportunity import PROGRESS_EVENTS
from projections.adapters.schema import EVENT_TABLES
from projections.adapters.tally_tables import SHAPES
from reminders.domain.facts import OpportunityFacts, evolve

# The read model the events decide (the projection_* bookkeeping left out).
BI_TABLES = tuple(name for name in EVENT_TABLES if name.startswith("bi_"))


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    figure: str


def commands_durable(answered: list[Answered], envelopes: list[dict[str, Any]]) -> Check:
    recorded = {(e["opportunity_id"], e["version"]) for e in envelopes}
    missing = [a for a in answered if (a.opportunity_id, a.version) not in recorded]
    return Check(
        "every command answered 2xx is in the event store",
        not missing and bool(answered),
        f"{len(answered):,} answered 2xx, {len(answered) - len(missing):,} found in "
        f"/notifications, {len(missing)} missing",
    )


def events_published(
    envelopes: list[dict[str, Any]], lost: list[Record], published: list[Record], epoch: str | None
) -> Check:
    """Store versions contiguous per opportunity; each on the topic, first seen in order, as a
    consumer saw them that read the log the broker lost (`lost`, read just before) and then the
    log the relay filled again in its epoch `epoch` (None: whatever epoch). The relay publishes
    again only what follows the position every reader had read through, so the new log may
    start at any version of an opportunity the lost log had reached. Records of an earlier epoch
    in the new log are those a relay sent before it noticed the loss: counted apart (what the
    consumers made of them, the read models' checks say)."""
    stored: dict[str, list[int]] = defaultdict(list)
    for e in envelopes:
        stored[e["opportunity_id"]].append(e["version"])
    gaps = sum(1 for v in stored.values() if sorted(v) != list(range(1, len(v) + 1)))
    seen: dict[str, set[int]] = defaultdict(set)
    out_of_order = redelivered = stale = 0
    in_epoch = []
    for record in sorted(published, key=lambda r: (r.partition, r.offset)):
        if epoch is not None and record.epoch != epoch:
            stale += 1
        else:
            in_epoch.append(record)
    for record in [*sorted(lost, key=lambda r: (r.partition, r.offset)), *in_epoch]:
        oid, version = record.value.get("opportunity_id"), record.value.get("version")
        if not isinstance(oid, str) or not isinstance(version, int):
            continue
        if version in seen[oid]:
            redelivered += 1
        elif version > max(seen[oid], default=0) + 1:
            out_of_order += 1
        seen[oid].add(version)
    unpublished = sum(
        1 for oid, versions in stored.items() for v in versions if v not in seen.get(oid, ())
    )
    return Check(
        "every recorded event reached the events topic, in order",
        not (gaps or unpublished or out_of_order),
        f"{len(envelopes):,} events of {len(stored):,} opportunities; {gaps} with a version gap "
        f"in the store; {unpublished} on neither the lost log nor the new one; {out_of_order} "
        f"first seen out of order; {redelivered:,} seen again (the relay publishing again what "
        "followed the position every reader had read)"
        + (f"; {stale:,} records of the lost log's epoch ahead of the history" if stale else ""),
    )


def rows(url: str, table: str) -> Counter[str]:
    """The table's rows as text; a tally's rows that sum to nothing (what moved away again,
    which a rebuild never writes) are none."""
    where = ""
    if table.startswith("bi_tally_"):
        name = (
            table.removeprefix("bi_tally_")
            .removesuffix("_by_slot")
            .removesuffix("_by_hour")
            .removesuffix("_by_day")
        )
        where = " WHERE " + " OR ".join(f't."{m}" <> 0' for m, _ in SHAPES[name][1])
    with psycopg.connect(url) as conn:
        return Counter(row[0] for row in conn.execute(f"SELECT t::text FROM {table} t{where}"))  # noqa: S608 - our own table names


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
    unsent = [row for row in fired if row[5] and not row[6] and row[0] not in on_topic]
    strangers = sum(1 for rid in on_topic if rid not in fired_ids)
    kinds = Counter(row[3] for row in fired)
    return Check(
        "each due reminder fired exactly once",
        not (twice or unsent or strangers or overdue_at_stop) and bool(fired),
        f"{len(fired):,} fired ({', '.join(f'{k} {n:,}' for k, n in sorted(kinds.items()))}); "
        f"{twice} fired twice; {len(unsent)} lost (not on crm.reminders nor in the outbox"
        + (f", first: {unsent[0][0]} {unsent[0][3]} for {unsent[0][1]}" if unsent else "")
        + "); "
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


def replay(envelopes: list[dict[str, Any]]) -> dict[str, list[OpportunityFacts]]:
    """What the reminders service should know of each opportunity after each of its
    versions (index: version - 1): its own `evolve` folded over the event store's history."""
    facts: dict[str, list[OpportunityFacts]] = defaultdict(list)
    for raw in sorted(envelopes, key=lambda e: (e["opportunity_id"], e["version"])):
        envelope = Envelope.model_validate(raw)
        known = facts.get(envelope.opportunity_id)
        after = evolve(known[-1] if known else None, envelope, 0)
        if after is not None:
            facts[envelope.opportunity_id].append(after)
    return dict(facts)


# The facts a reminders row holds, compared with the replay (not where it lives in Kafka).
FACT_COLUMNS = tuple(f.name for f in fields(OpportunityFacts) if f.name != "partition")


def reminders_match(
    reminders_url: str,
    truth: dict[str, list[OpportunityFacts]],
    events: list[Record],
    epoch: str | None,
) -> Check:
    """The reminders' facts equal the event store's history folded again, opportunity for
    opportunity, at the version each row holds. A row behind the store (or a missing one) is
    right only when the events it lacks were still unread, at or past the reminders' stored
    position in the events topic (`events`, in the relay's log `epoch`), when it stopped."""
    with psycopg.connect(reminders_url) as conn:
        found = conn.execute(
            f"SELECT {', '.join(FACT_COLUMNS)} FROM reminders_opportunity"  # noqa: S608 - our columns
        ).fetchall()
        marks = {
            int(p): int(o)
            for p, o, e in conn.execute(
                "SELECT partition, next_offset, log_epoch FROM reminders_position WHERE topic = %s",
                (topics.OPPORTUNITY_EVENTS,),
            )
            if epoch is None or e == epoch
        }
    read: dict[tuple[str, int], bool] = {}
    for r in events:
        oid, version = r.value.get("opportunity_id"), r.value.get("version")
        if isinstance(oid, str) and isinstance(version, int) and epoch in (None, r.epoch):
            read[oid, version] = read.get((oid, version), False) or r.offset < marks.get(
                r.partition, 0
            )
    differing: list[str] = []
    behind = skipped = 0
    for row in found:
        have = dict(zip(FACT_COLUMNS, row, strict=True))
        oid, version = have["opportunity_id"], have["version"]
        versions = truth.get(oid, [])
        want = (
            {c: _plain(getattr(versions[version - 1], c)) for c in FACT_COLUMNS}
            if 0 < version <= len(versions)
            else {}
        )
        wrong = [c for c in FACT_COLUMNS if have[c] != want.get(c)]
        if wrong:
            differing.append(
                f"{oid} v{version}: "
                + ", ".join(f"{c} {have[c]} (store: {want.get(c)})" for c in wrong[:3])
            )
        later = range(version + 1, len(versions) + 1)
        if any(read.get((oid, v), True) for v in later):
            skipped += 1
        elif later:
            behind += 1
    held = {row[0] for row in found}
    absent = [oid for oid in truth if oid not in held]
    missing = sum(1 for oid in absent if read.get((oid, 1), True))
    return Check(
        "the reminders' facts equal the event store's history, opportunity for opportunity",
        not (differing or skipped or missing),
        f"{len(found):,} opportunities in reminders_opportunity, {len(truth):,} in the store; "
        f"{len(differing)} differing at their version, {skipped} lacking an event they had "
        f"read, {missing} missing; {behind + len(absent) - missing} behind by events still "
        "unread when it stopped" + (f" (first differing: {differing[0]})" if differing else ""),
    )


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)  # an enum member as the string it is stored as


def commands_taken(
    reminders_url: str,
    envelopes: list[dict[str, Any]],
    truth: dict[str, list[OpportunityFacts]],
    lost_log: list[Record],
    log: list[Record],
) -> Check:
    """Each command the reminders sent (the fired log keeps its bytes) reached the
    opportunity service: each won deal a renewal command named has its renewal; a reclaim
    command was applied, or the deal progressed or left `open` since its basis (then it is
    refused). Commands still in the outbox when reminders stopped are left out (not sent yet).
    One neither applied nor refusable was never taken: said apart, whether it was
    only on a log the broker lost (`lost_log`) or is on the log it has now (`log`)."""
    with psycopg.connect(reminders_url) as conn:
        # A command still in the outbox when reminders stopped is sent when it starts again
        # (as the reminders' own check counts it): not sent yet, so not missed.
        sent = [
            orjson.loads(bytes(row[0]))
            for row in conn.execute(
                "SELECT f.command FROM reminders_fired f WHERE f.command IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM reminders_outbox o "
                "WHERE o.opportunity_id = f.opportunity_id AND o.reminder_id = f.reminder_id)"
            )
        ]
    reclaimed = {
        e["payload"].get("command_id")
        for e in envelopes
        if e["event_type"] == "OpportunityReclaimed"
    }
    renewed = {
        e["payload"].get("renewal_of") for e in envelopes if e["event_type"] == "OpportunityCreated"
    }
    reclaims = [c for c in sent if c["command"] == "reclaim"]
    renewals = [c for c in sent if c["command"] == "create_renewal"]
    applied = [c for c in reclaims if c["command_id"] in reclaimed]
    untaken = [
        c
        for c in reclaims
        if c["command_id"] not in reclaimed
        and (facts := truth.get(c["opportunity_id"]))
        and _plain(facts[-1].status) == "open"
        and facts[-1].last_progress_version <= c["based_on_version"]
    ]
    unrenewed = [c for c in renewals if c["opportunity_id"] not in renewed]
    kept = {r.value.get("command_id") for r in log}
    lost = {r.value.get("command_id") for r in lost_log} - kept
    missed = [*untaken, *unrenewed]
    where = Counter(_found_on(c["command_id"], kept, lost) for c in missed)
    return Check(
        "each command the reminders sent was taken by the opportunity service",
        not missed,
        f"{len(reclaims):,} reclaim commands: {len(applied):,} applied, "
        f"{len(reclaims) - len(applied) - len(untaken):,} refused (progressed or no longer "
        f"open), {len(untaken)} never taken; {len(renewals):,} renewal commands, "
        f"{len(unrenewed)} without their renewal"
        + (
            " (of those missed: "
            + ", ".join(f"{n:,} {w}" for w, n in sorted(where.items()))
            + f"; first: {missed[0]['command_id']})"
            if missed
            else ""
        ),
    )


def _found_on(command_id: str, kept: set[Any], lost: set[Any]) -> str:
    if command_id in kept:
        return "on the log now"
    return "only on the lost log" if command_id in lost else "on no log"


def leads_once(
    leads: list[str], envelopes: list[dict[str, Any]], rejected: list[Record], before_wipe: int
) -> Check:
    """Each lead made at most one opportunity, and each has an answer: an opportunity or a
    rejection. `leads[:before_wipe]` were sent before the broker lost its log (all of them
    when it did not)."""
    created = Counter(
        e["payload"].get("lead_id")
        for e in envelopes
        if e["event_type"] == "OpportunityCreated" and e["payload"].get("lead_id")
    )
    answered = {r.value.get("lead_id") for r in rejected}
    twice = sum(1 for n in created.values() if n > 1)
    unanswered = [i for i, lead in enumerate(leads) if lead not in created and lead not in answered]
    after = sum(1 for i in unanswered if i >= before_wipe)
    return Check(
        "each lead created at most one opportunity, none unanswered",
        not (twice or unanswered),
        f"{len(leads):,} leads published; {len(created):,} opportunities from leads; "
        f"{len(answered):,} rejected; {twice} created twice; {len(unanswered)} unanswered"
        + (
            f" ({after:,} of them sent after the broker lost its log; first: "
            f"{leads[unanswered[0]]})"
            if unanswered
            else ""
        ),
    )
