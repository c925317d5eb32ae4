"""The relay as deployed (SPEC §3.1, §3.2, §7): `oppstream serve opportunity` processes on
SQLite and PostgreSQL, a real broker, 6 partitions. Every recorded event reaches
`crm.opportunity.events` in per-opportunity order, at least once, whatever happens to the
broker or to the relay's process; one relay runs per event store."""

import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import sqlalchemy as sa

from chassis.auth import Principal
from contracts import topics
from contracts.competitions import COMPETITION_PAYLOADS, competition_record_id
from contracts.customer import Customer
from contracts.customer_record import CUSTOMER_PAYLOADS
from contracts.envelope import Envelope
from contracts.opportunity import OpportunityWon
from contracts.rules import Role, load_rulebook
from contracts.targets import TARGET_PAYLOADS, target_id_for
from opportunity.adapters.positions import read_position
from opportunity.adapters.translation import envelope_of
from opportunity.application.app import OpportunityApp
from opportunity.application.creating import NewOpportunity
from opportunity.application.unit_of_work import Context, Work
from opportunity.domain.customer_record import CustomerRecord
from opportunity.domain.opportunity import Opportunity
from opportunity.settings import eventsourcing_env, sqlalchemy_url
from services.opportunity.tests.deployed import (
    STORES,
    Deployed,
    deployed,
    kafka_env,
    new_event_store,
)
from tests.support.kafka import TestBroker
from tests.support.opportunity_reads import history
from tests.support.polling import wait_until
from tests.support.postgres import fresh_database
from tests.support.principals import auth, customer
from tests.support.processes import running_service, start_service
from tests.support.topics import Consumed, collect, end_offsets, event_id, keyed

pytestmark = pytest.mark.slow

TODAY = datetime.now(UTC).date()
ARRIVAL_DEADLINE = 60.0


@pytest.fixture(scope="module", params=STORES)
def relaying(
    request: pytest.FixtureRequest, kafka: TestBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    """One service with the relay on a fresh store, shared by the tests that only add."""
    workdir = tmp_path_factory.mktemp(f"relay-{request.param}")
    with deployed(
        request.param,
        kafka,
        workdir,
        "oppstream_relay",
        timeout=30.0,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
    ) as served:
        yield served


# -- talking to a service ----------------------------------------------------------------------


def command(
    client: httpx.Client,
    principal: str,
    path: str,
    body: dict[str, Any] | None = None,
    method: str = "POST",
) -> dict[str, Any]:
    answer = client.request(method, path, json=body or {}, headers=auth(principal))
    assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
    state: dict[str, Any] = answer.json()
    return state


def metric(client: httpx.Client, sample: str) -> float:
    """The value of one sample of /metrics, e.g. `oppstream_relay_leader`; 0 if absent."""
    text = client.get("/metrics").text
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# -- what a consumer of crm.opportunity.events sees ---------------------------------------------


def by_opportunity(records: list[Consumed]) -> dict[str, list[dict[str, Any]]]:
    """Each opportunity's envelopes in the order a consumer reads them, redeliveries dropped."""
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    seen: set[str] = set()
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in ordered:
        envelope = record.json()
        if envelope["event_id"] in seen:
            continue
        seen.add(envelope["event_id"])
        found[envelope["opportunity_id"]].append(envelope)
    return found


def assert_in_version_order(
    records: list[Consumed], expected: dict[str, list[dict[str, Any]]]
) -> None:
    """Every expected envelope arrived, each opportunity's in version order 1..n on one
    partition, and each is exactly what the history says."""
    partitions: dict[bytes | None, set[int]] = defaultdict(set)
    for record in records:
        partitions[record.key].add(record.partition)
    assert all(len(found) == 1 for found in partitions.values()), "a key spread over partitions"
    arrived = by_opportunity(records)
    for oid, envelopes in expected.items():
        got = arrived.get(oid, [])
        assert [e["version"] for e in got] == list(range(1, len(got) + 1)), (oid, got)
        assert got == envelopes, f"{oid}: what arrived differs from its history"
        for envelope in got:
            Envelope.model_validate(envelope)


# -- 200 opportunities, several commands each -----------------------------------------------------


@dataclass
class Plan:
    oid: str
    owner: str
    customer: dict[str, str]
    won: dict[str, Any] | None = None


def drive(client: httpx.Client, n: int) -> Plan:
    """One opportunity through a few commands; every fourth is won, every fourth lost."""
    owner = "rep-1" if n % 8 < 4 else "rep-2"
    buyer = customer(tier="KA" if n % 3 else "SMB", ownership="PRIVATE")
    created = command(
        client,
        owner,
        "/opportunities",
        {"type": "new", "customer": buyer, "amount": f"{1000 + n}.00", "title": f"deal {n}"},
    )
    plan = Plan(created["id"], owner, buyer)
    base = f"/opportunities/{plan.oid}"
    command(client, owner, f"{base}/advance", {"to_stage": "requirements"})
    command(client, owner, f"{base}/follow-ups", {"kind": "call", "note": f"call {n}"})
    if n % 4 == 0:
        for stage in ("proposal", "negotiation", "signing"):
            command(client, owner, f"{base}/advance", {"to_stage": stage})
        plan.won = {
            "amount": f"{2000 + n}.50",
            "contract_ref": f"HT-{plan.oid[:8]}",
            "contract_start_on": str(TODAY),
            "contract_end_on": str(TODAY + timedelta(days=365)),
        }
        command(client, owner, f"{base}/win", plan.won)
    elif n % 4 == 1:
        command(client, owner, f"{base}/lose", {"reason": "price", "competitor": "Rival"})
    elif n % 4 == 2:
        command(client, owner, base, {"amount": f"{3000 + n}.00"}, method="PATCH")
        command(client, owner, f"{base}/follow-ups", {"kind": "visit", "note": "on site"})
    else:
        command(client, owner, f"{base}/pause", {"reason": "budget freeze"})
        command(client, owner, f"{base}/resume")
    return plan


def test_every_event_of_200_opportunities_arrives_in_version_order_and_wins_once(
    relaying: Deployed, kafka: TestBroker
) -> None:
    events_start = end_offsets(kafka.bootstrap, topics.OPPORTUNITY_EVENTS)
    won_start = end_offsets(kafka.bootstrap, topics.OPPORTUNITY_WON)
    if kafka.kind != "external":  # topics made by the services of this session
        assert len(events_start) == len(won_start) == 6
    with ThreadPoolExecutor(32) as pool:
        plans = list(pool.map(lambda n: drive(relaying.client, n), range(200)))
        histories = dict(
            zip(
                (p.oid for p in plans),
                pool.map(lambda p: history(relaying.client, p.oid), plans),
                strict=True,
            )
        )
    ids = [p.oid for p in plans]
    total = sum(len(h) for h in histories.values())
    assert total >= 200 * 4

    records = collect(
        kafka.bootstrap,
        topics.OPPORTUNITY_EVENTS,
        keyed(*ids),
        total,
        ARRIVAL_DEADLINE,
        start=events_start,
        distinct=event_id,
    )
    assert_in_version_order(records, histories)
    assert {r.json()["event_id"] for r in records} == {
        e["event_id"] for h in histories.values() for e in h
    }

    won_plans = {p.oid: p for p in plans if p.won is not None}
    assert len(won_plans) == 50
    won_records = collect(
        kafka.bootstrap,
        topics.OPPORTUNITY_WON,
        keyed(*ids),
        len(won_plans),
        ARRIVAL_DEADLINE,
        start=won_start,
        distinct=event_id,
    )
    messages = {r.json()["event_id"]: r.json() for r in won_records}
    assert sorted(m["opportunity_id"] for m in messages.values()) == sorted(won_plans)
    for message in messages.values():
        plan = won_plans[message["opportunity_id"]]
        assert plan.won is not None
        won_event = histories[plan.oid][-1]
        assert won_event["event_type"] == "OpportunityWon"
        assert message["event_id"] == won_event["event_id"]
        parsed = OpportunityWon.model_validate(message)
        assert parsed.customer.model_dump(mode="json") == {
            k: plan.customer[k] for k in ("uscc", "name", "tier", "ownership")
        }
        assert (parsed.owner_id, parsed.team_id, parsed.type) == (plan.owner, "east", "new")
        assert parsed.amount == Decimal(plan.won["amount"])
        assert parsed.currency == "CNY"
        assert parsed.contract_ref == plan.won["contract_ref"]
        assert str(parsed.contract_start_on) == plan.won["contract_start_on"]
        assert str(parsed.contract_end_on) == plan.won["contract_end_on"]
        assert parsed.won_at == datetime.fromisoformat(won_event["occurred_at"])
    for record in won_records:  # a redelivery is the same message
        assert record.json() == messages[record.json()["event_id"]]


# -- the customer records' events ----------------------------------------------------------------


def test_a_customer_records_events_travel_keyed_by_its_id_in_version_order(
    relaying: Deployed, kafka: TestBroker
) -> None:
    client = relaying.client
    start = end_offsets(kafka.bootstrap, topics.OPPORTUNITY_EVENTS)
    buyer = customer()
    uscc = buyer["uscc"]
    command(client, "rep-1", "/opportunities", {"type": "new", "customer": buyer})
    people = f"/customers/{uscc}/key-persons"
    command(client, "rep-1", people, {"name": "王总", "role": "decision_maker"})
    command(client, "rep-1", people, {"name": "Li", "role": "user", "reports_to": "1"})
    command(client, "rep-1", f"{people}/1", method="DELETE")
    record_id = str(CustomerRecord.create_id(uscc))

    records = collect(
        kafka.bootstrap,
        topics.OPPORTUNITY_EVENTS,
        keyed(record_id),
        5,
        ARRIVAL_DEADLINE,
        start=start,
        distinct=event_id,
    )

    arrived = by_opportunity(records)[record_id]
    assert [(e["version"], e["event_type"]) for e in arrived] == [
        (1, "CustomerRecorded"),
        (2, "CustomerKeyPersonAdded"),
        (3, "CustomerKeyPersonAdded"),
        (4, "CustomerKeyPersonChanged"),
        (5, "CustomerKeyPersonRemoved"),
    ]
    assert len({r.partition for r in records}) == 1
    for record in records:
        envelope = Envelope.model_validate(record.json())
        assert record.header("event_type") == envelope.event_type.encode()
        assert CUSTOMER_PAYLOADS[envelope.event_type].model_validate(envelope.payload).uscc == uscc


def test_targets_and_competitions_events_travel_keyed_by_their_aggregates_id(
    relaying: Deployed, kafka: TestBroker
) -> None:
    client = relaying.client
    start = end_offsets(kafka.bootstrap, topics.OPPORTUNITY_EVENTS)
    period = f"{random.randint(2100, 9999)}-Q4"
    team = f"/targets/{period}/team/east"
    command(client, "admin", team, {"metric": "won_count", "value": 10}, method="PUT")
    command(client, "manager-east", team, {"metric": "won_count", "value": 12}, method="PUT")
    competition = f"sprint-{uuid4().hex[:8]}"
    definition = {"id": competition, "name": "Sprint", "metric": "advances"}
    command(
        client, "admin", "/competitions", {**definition, "from": "2026-10-01", "to": "2027-01-01"}
    )
    target_id = target_id_for(period, "team", "east", "won_count")
    record_id = competition_record_id(competition)

    records = collect(
        kafka.bootstrap,
        topics.OPPORTUNITY_EVENTS,
        keyed(target_id, record_id),
        3,
        ARRIVAL_DEADLINE,
        start=start,
        distinct=event_id,
    )

    arrived = by_opportunity(records)
    assert [(e["version"], e["event_type"]) for e in arrived[target_id]] == [
        (1, "TargetSet"),
        (2, "TargetAdjusted"),
    ]
    assert [(e["version"], e["event_type"]) for e in arrived[record_id]] == [
        (1, "CompetitionDefined")
    ]
    for record in records:
        envelope = Envelope.model_validate(record.json())
        assert record.header("event_type") == envelope.event_type.encode()
        payloads = {**TARGET_PAYLOADS, **COMPETITION_PAYLOADS}
        payloads[envelope.event_type].model_validate(envelope.payload)


# -- the broker down: commands are answered, events follow once it is back ------------------------


def test_commands_answered_during_a_broker_outage_are_relayed_in_order_after_it(
    relaying: Deployed, kafka: TestBroker
) -> None:
    if kafka.process is None:
        pytest.skip(f"cannot pause a {kafka.kind} broker this suite did not start")
    client = relaying.client
    start = end_offsets(kafka.bootstrap, topics.OPPORTUNITY_EVENTS)
    ids = [
        command(client, "rep-1", "/opportunities", {"type": "new", "customer": customer()})["id"]
        for _ in range(20)
    ]

    def five_commands(oid: str) -> list[tuple[int, float]]:
        base = f"/opportunities/{oid}"
        steps: list[tuple[str, dict[str, Any], str]] = [
            (f"{base}/advance", {"to_stage": "requirements"}, "POST"),
            (f"{base}/follow-ups", {"kind": "call", "note": "during the outage"}, "POST"),
            (base, {"title": "renamed while Kafka was down"}, "PATCH"),
            (f"{base}/advance", {"to_stage": "proposal"}, "POST"),
            (f"{base}/follow-ups", {"kind": "email", "note": "sent the quote"}, "POST"),
        ]
        timings = []
        for path, body, method in steps:
            started = time.monotonic()
            answer = client.request(method, path, json=body, headers=auth("rep-1"))
            timings.append((answer.status_code, time.monotonic() - started))
        return timings

    with kafka.outage(), ThreadPoolExecutor(20) as pool:
        answers = [t for timings in pool.map(five_commands, ids) for t in timings]
    assert len(answers) == 100
    assert all(200 <= status < 300 for status, _ in answers), answers
    slowest = max(seconds for _, seconds in answers)
    assert slowest < 2.0, f"a command took {slowest:.2f} s: it waited for Kafka"

    histories = {oid: history(client, oid) for oid in ids}
    assert all(len(h) == 6 for h in histories.values())
    records = collect(
        kafka.bootstrap,
        topics.OPPORTUNITY_EVENTS,
        keyed(*ids),
        120,
        ARRIVAL_DEADLINE,
        start=start,
        distinct=event_id,
    )
    assert_in_version_order(records, histories)


# -- the relay killed mid-stream -------------------------------------------------------------------

BACKLOG_OPPORTUNITIES = 300
FOLLOW_UPS = 9  # 300 × (1 + 9) = 3000 events, and each create's CustomerRecorded
RELAY_BATCH = 5  # small batches: many publish-then-confirm steps to be killed between
SERVICE = Principal("service", Role.SERVICE)


@pytest.fixture(params=STORES)
def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with new_event_store(request.param, tmp_path, "oppstream_relay_kill") as url:
        yield url


def record_backlog(store_url: str) -> dict[str, int]:
    """3300 events recorded straight into the store (no relay runs): 300 opportunities with 10
    events each and their customers recorded; each event id and the position of its
    notification."""
    app = OpportunityApp(load_rulebook(), env=eventsourcing_env(store_url))
    ctx = Context(SERVICE, datetime.now(UTC))

    def create(new: NewOpportunity) -> Work[Opportunity]:
        return lambda uow: app.create(uow, new, ctx)

    def follow_up(oid: UUID, note: str) -> Work[Opportunity]:
        return lambda uow: app.log_follow_up(uow, oid, "call", note, ctx)

    try:
        news = [
            NewOpportunity(
                type="new",
                customer=Customer.model_validate(customer()),
                owner_id="rep-1",
                team_id="east",
            )
            for _ in range(BACKLOG_OPPORTUNITIES)
        ]
        rounds: list[list[Work[Opportunity]]] = [[create(n) for n in news]]
        rounds += [[follow_up(n.id, f"call {k}") for n in news] for k in range(FOLLOW_UPS)]
        for works in rounds:
            for outcome in app.run_batch(list(works)):
                outcome.unwrap()
        notifications = app.notifications(0, 100_000)
        return {envelope_of(n)["event_id"]: n.id for n in notifications}
    finally:
        app.close()


def stored_relay_position(store_url: str) -> int:
    engine = sa.create_engine(sqlalchemy_url(store_url))
    try:
        with engine.connect() as conn:
            return read_position(conn, "relay")
    finally:
        engine.dispose()


def test_a_relay_killed_mid_stream_republishes_only_what_it_had_not_confirmed(
    fresh_store: str, kafka: TestBroker, tmp_path: Path
) -> None:
    positions = record_backlog(fresh_store)
    total = len(positions)
    assert total == BACKLOG_OPPORTUNITIES * (2 + FOLLOW_UPS)
    start = end_offsets(kafka.bootstrap, topics.OPPORTUNITY_EVENTS)
    env = kafka_env(tmp_path / "run", kafka, fresh_store, relay_batch=str(RELAY_BATCH))

    # Not waiting for the consumers: the relay starts as soon as the broker answers.
    first = start_service("opportunity", env, tmp_path / "run", consumers_started=False)
    try:
        with httpx.Client(base_url=first.url, timeout=5.0) as client:
            wait_until(
                lambda: metric(client, "oppstream_relay_events_total") >= total // 3,
                30.0,
                "the relay published a third of the backlog",
                interval=0.0,  # the backlog drains in about a second: kill promptly
            )
        first.kill_hard()
    finally:
        first.stop()
    confirmed = stored_relay_position(fresh_store)
    assert 0 < confirmed < max(positions.values()), "the kill did not come mid-stream"

    with running_service("opportunity", env, tmp_path / "run") as second:
        records = collect(
            kafka.bootstrap,
            topics.OPPORTUNITY_EVENTS,
            lambda r: r.json()["event_id"] in positions,
            total,
            ARRIVAL_DEADLINE,
            start=start,
            distinct=event_id,
        )
        with httpx.Client(base_url=second.url, timeout=5.0) as client:
            # The gauge moves once the position is stored, just after the last publish.
            wait_until(
                lambda: metric(client, "oppstream_relay_lag") == 0, 15.0, "the relay caught up"
            )

    copies: dict[str, list[Consumed]] = defaultdict(list)
    for record in records:
        copies[record.json()["event_id"]].append(record)
    assert set(copies) == set(positions), "an event is missing"
    # The only events a restart may republish: the batch in flight when the process died,
    # i.e. the first RELAY_BATCH events after the stored position.
    after = sorted(p for p in positions.values() if p > confirmed)
    unconfirmed = set(after[:RELAY_BATCH])
    duplicated = {eid: found for eid, found in copies.items() if len(found) > 1}
    for eid, found in duplicated.items():
        assert positions[eid] in unconfirmed, (
            f"event at position {positions[eid]} was published twice though the relay had "
            f"confirmed up to {confirmed}"
        )
        assert len({(r.value, r.headers, r.key, r.partition) for r in found}) == 1
    counts = Counter(len(found) for found in copies.values())
    assert set(counts) <= {1, 2}, counts
    ordered = by_opportunity(records)
    versions = Counter(tuple(e["version"] for e in envelopes) for envelopes in ordered.values())
    assert versions == {
        tuple(range(1, 1 + FOLLOW_UPS + 1)): BACKLOG_OPPORTUNITIES,  # the opportunities
        (1,): BACKLOG_OPPORTUNITIES,  # their customer records
    }


# -- two copies on one PostgreSQL store: one relay, taken over after kill -9 ------------------------


def relay_leader(client: httpx.Client) -> bool:
    answer = client.get("/readyz").json()
    return bool(answer.get("relay", {}).get("leader"))


@pytest.mark.postgres
def test_one_of_two_copies_relays_and_the_other_takes_over_after_kill_9(
    kafka: TestBroker, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database("oppstream_leader"))
        env = kafka_env(tmp_path, kafka, url)
        copies = [
            stack.enter_context(running_service("opportunity", env, tmp_path / name))
            for name in ("a", "b")
        ]
        clients = [stack.enter_context(httpx.Client(base_url=c.url, timeout=10.0)) for c in copies]
        wait_until(
            lambda: sum(relay_leader(c) for c in clients) == 1, 15.0, "one copy leads the relay"
        )
        leader = next(i for i, c in enumerate(clients) if relay_leader(c))
        follower = 1 - leader

        start = end_offsets(kafka.bootstrap, topics.OPPORTUNITY_EVENTS)
        before = [
            command(clients[i % 2], "rep-1", "/opportunities", {"type": "new", "customer": c})["id"]
            for i, c in enumerate(customer() for _ in range(10))
        ]
        collect(
            kafka.bootstrap,
            topics.OPPORTUNITY_EVENTS,
            keyed(*before),
            len(before),
            ARRIVAL_DEADLINE,
            start=start,
            distinct=event_id,
        )
        assert metric(clients[leader], "oppstream_relay_leader") == 1
        assert metric(clients[follower], "oppstream_relay_leader") == 0
        assert metric(clients[leader], "oppstream_relay_events_total") >= len(before)
        assert metric(clients[follower], "oppstream_relay_events_total") == 0

        copies[leader].kill_hard()
        survivor = clients[follower]
        killed = time.monotonic()
        wait_until(lambda: relay_leader(survivor), 10.0, "the survivor leads the relay")
        took = time.monotonic() - killed
        assert took < 10.0

        after_start = end_offsets(kafka.bootstrap, topics.OPPORTUNITY_EVENTS)
        after = [
            command(survivor, "rep-1", "/opportunities", {"type": "new", "customer": customer()})[
                "id"
            ]
            for _ in range(10)
        ]
        for oid in before:
            command(survivor, "rep-1", f"/opportunities/{oid}/advance", {"to_stage": "proposal"})
        expected = {oid: history(survivor, oid) for oid in [*before, *after]}
        records = collect(
            kafka.bootstrap,
            topics.OPPORTUNITY_EVENTS,
            keyed(*expected),
            len(after) + len(before),
            ARRIVAL_DEADLINE,
            start=after_start,
            distinct=event_id,
        )
        arrived = by_opportunity(records)
        for oid in after:
            assert [e["version"] for e in arrived[oid]] == [1]
        for oid in before:
            assert arrived[oid][-1] == expected[oid][-1]
        assert metric(survivor, "oppstream_relay_events_total") >= len(after) + len(before)
