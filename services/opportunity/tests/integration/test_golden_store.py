"""Stored events outlive the code (SPEC §7): the event stores released versions recorded
(services/opportunity/tests/golden/<release>/, on SQLite and on PostgreSQL) load, replay,
translate, project and relay with today's code exactly as with the code that recorded them.

A golden store is never written again by later code: when a test here fails, the code must
change (an upcaster, `register_topic`, the relay's topic filter), not the files.
"""

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from eventsourcing.domain import Aggregate
from eventsourcing.utils import resolve_topic
from fastapi.testclient import TestClient

from chassis.kafka.producing import ensure_topics
from contracts import topics
from contracts.envelope import Envelope
from contracts.opportunity import PAYLOADS
from contracts.rules import load_rulebook
from opportunity.adapters.positions import read_position
from opportunity.application.stored_topics import OPPORTUNITY_TOPICS
from opportunity.domain.customer_record import CustomerRecord
from opportunity.domain.opportunity import Opportunity
from opportunity.main import build_app
from opportunity.settings import Settings, sqlalchemy_url
from services.opportunity.tests.golden import reading
from tests.support.kafka import TestBroker
from tests.support.polling import wait_until
from tests.support.postgres import fresh_database
from tests.support.principals import PRINCIPALS, auth, customer
from tests.support.topics import Consumed, collect, end_offsets, event_id

# Every topic the golden stores name: of their events and snapshots, and the aggregate
# classes inside them. eventsourcing resolves each one whenever it replays. A module or class
# that moves keeps its old topics resolving (`register_topic`) and in the relay's filter;
# this list only ever grows, with a new release's golden store.
STORED_TOPICS = {
    "eventsourcing.domain:Snapshot",
    "opportunity.domain:ActiveOpportunityIndex",
    "opportunity.domain:ActiveOpportunityIndex.Released",
    "opportunity.domain:ActiveOpportunityIndex.Retaken",
    "opportunity.domain:ActiveOpportunityIndex.Taken",
    "opportunity.domain:CustomerAccount",
    "opportunity.domain:CustomerAccount.ContractWon",
    "opportunity.domain:CustomerAccount.Opened",
    "opportunity.domain:Opportunity",
    "opportunity.domain:Opportunity.CompetitorRecorded",
    "opportunity.domain:Opportunity.DocumentAttached",
    "opportunity.domain:Opportunity.FollowUpLogged",
    "opportunity.domain:Opportunity.InfoUpdated",
    "opportunity.domain:Opportunity.KeyPersonAdded",
    "opportunity.domain:Opportunity.OpportunityAssigned",
    "opportunity.domain:Opportunity.OpportunityCreated",
    "opportunity.domain:Opportunity.OpportunityDeferred",
    "opportunity.domain:Opportunity.OpportunityLost",
    "opportunity.domain:Opportunity.OpportunityPaused",
    "opportunity.domain:Opportunity.OpportunityReactivated",
    "opportunity.domain:Opportunity.OpportunityReclaimed",
    "opportunity.domain:Opportunity.OpportunityResumed",
    "opportunity.domain:Opportunity.OpportunityVoided",
    "opportunity.domain:Opportunity.OpportunityWon",
    "opportunity.domain:Opportunity.StageAdvanced",
    "opportunity.domain:Opportunity.StageReverted",
    "opportunity.idempotency:IdempotentAnswer",
    "opportunity.idempotency:IdempotentAnswer.Answered",
}

RELEASES = reading.releases()
ARRIVAL_DEADLINE = 30.0


@dataclass(frozen=True)
class Golden:
    """A release's golden store, put where the code opens it (a copy: the files stay)."""

    release: Path
    kind: str
    store_url: str

    def expected(self, name: str) -> Any:
        return reading.read_json(self.release / name)

    @property
    def aggregates(self) -> dict[str, Any]:
        found: dict[str, Any] = self.expected(reading.AGGREGATES)["aggregates"]
        return found

    @property
    def opportunities(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.aggregates.items() if v["kind"] == "Opportunity"}

    @property
    def notifications(self) -> dict[str, Any]:
        found: dict[str, Any] = self.expected(reading.notifications_file(self.kind))
        return found


@pytest.fixture(
    params=[
        pytest.param(
            (release, kind),
            id=f"{release.name}-{kind}",
            marks=[pytest.mark.postgres] if kind == "postgres" else [],
        )
        for release in RELEASES
        for kind in reading.STORES
    ]
)
def golden(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Golden]:
    release, kind = request.param
    if kind == "sqlite":
        yield Golden(release, kind, reading.sqlite_copy(release, tmp_path))
        return
    with fresh_database("oppstream_golden") as url:
        reading.load_postgres(release, url)
        yield Golden(release, kind, url)


def test_every_kept_release_has_its_whole_golden_store() -> None:
    assert [r.name for r in RELEASES][:1] == ["v0.5.0"], "the oldest golden store is gone"
    for release in RELEASES:
        names = [reading.POSTGRES_STORE, reading.AGGREGATES, reading.BI_OPPORTUNITY]
        names += [reading.notifications_file(kind) for kind in reading.STORES]
        for name in names:
            assert (release / name).is_file(), f"{release.name} lacks {name}"


def test_the_newest_golden_store_has_every_event_type() -> None:
    """A new event type needs a new golden store recording it (write_golden.py)."""
    newest = RELEASES[-1]
    for kind in reading.STORES:
        items = reading.read_json(newest / reading.notifications_file(kind))["items"]
        assert {i["envelope"]["event_type"] for i in items} == set(PAYLOADS), kind
    kinds = {
        a["kind"] for a in reading.read_json(newest / reading.AGGREGATES)["aggregates"].values()
    }
    assert kinds == {"Opportunity", "ActiveOpportunityIndex", "CustomerAccount", "IdempotentAnswer"}


def test_the_stored_topics_are_the_ones_the_code_keeps_loading(golden: Golden) -> None:
    with reading.opened(golden.store_url) as app:
        stored = reading.stored_topics(app, golden.store_url)
    assert stored <= STORED_TOPICS, f"not in STORED_TOPICS: {sorted(stored - STORED_TOPICS)}"
    if golden.release == RELEASES[-1]:
        assert stored == STORED_TOPICS, f"named by no store: {sorted(STORED_TOPICS - stored)}"
    for topic in stored:
        found = resolve_topic(topic)
        assert isinstance(found, type), topic
        assert issubclass(found, Aggregate | Aggregate.Event) or topic.endswith(":Snapshot"), topic
    # The relay reads the log filtered by topic: an Opportunity event it does not name
    # would never reach Kafka.
    opportunity_events = {t for t in stored if issubclass(resolve_topic(t), Opportunity.Event)}
    assert opportunity_events <= set(OPPORTUNITY_TOPICS), sorted(
        opportunity_events - set(OPPORTUNITY_TOPICS)
    )


def test_every_aggregate_replays_to_the_state_it_was_recorded_with(golden: Golden) -> None:
    expected = golden.expected(reading.AGGREGATES)
    with reading.opened(golden.store_url) as app:
        loaded = reading.replayed(app)
        from_events = {
            aggregate_id: reading.replayed_from_events(app, UUID(aggregate_id))
            for aggregate_id in expected["aggregates"]
        }
    assert loaded["snapshots"] == expected["snapshots"]
    assert sorted(loaded["aggregates"]) == sorted(expected["aggregates"])
    for aggregate_id, state in expected["aggregates"].items():
        assert as_recorded(loaded["aggregates"][aggregate_id], state) == state, aggregate_id
        without_snapshots = as_recorded(from_events[aggregate_id], state)
        assert without_snapshots == state, f"{aggregate_id} without its snapshots"


def as_recorded(found: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """The fields a release recorded of an aggregate as loaded today; a field added since (a
    deferral's note, a forecast category override) has no value in events older than it."""
    added = {name: value for name, value in found.items() if name not in recorded}
    assert all(value is None for value in added.values()), added
    return {name: value for name, value in found.items() if name in recorded}


def test_every_event_translates_to_the_envelope_the_relay_sent(golden: Golden) -> None:
    expected = golden.notifications
    with reading.opened(golden.store_url) as app:
        items = reading.feed(app)
        won = reading.won_messages(app, items)
    assert items == expected["items"]
    assert won == expected["won"]
    for item in items:
        envelope = Envelope.model_validate(item["envelope"])
        PAYLOADS[envelope.event_type].model_validate(item["envelope"]["payload"])


def test_the_envelopes_project_to_the_recorded_read_model(golden: Golden, tmp_path: Path) -> None:
    with reading.opened(golden.store_url) as app:
        envelopes = [item["envelope"] for item in reading.feed(app)]
    projected = reading.project(envelopes, tmp_path)
    outcome = projected.outcome
    assert (outcome.applied, outcome.not_projected) == (len(envelopes), 0)
    assert (outcome.duplicates, outcome.held, outcome.gaps, outcome.poison) == (0, 0, 0, 0)
    recorded = golden.expected(reading.BI_OPPORTUNITY)
    # Columns added since the release hold what a projection of its events gives them:
    # `classified_by` null (the customers were not classified then), the working days of paused
    # visits (SPEC §8.4) as the projection counts them, no forecast category override, and
    # the deferral's reason and note of an opportunity deferred now (a free-text reason of then
    # reads as `other`, its text as the note).
    kept = [
        {name: row[name] for name in old}
        for row, old in zip(projected.bi_opportunity, recorded, strict=True)
    ]
    assert kept == recorded
    added = {name for row in projected.bi_opportunity for name in row} - {
        name for row in recorded for name in row
    }
    assert added == {
        "classified_by",
        "visit_paused_working_days",
        "forecast_category_override",
        "deferred_reason",
        "deferred_note",
    }
    assert {row["classified_by"] for row in projected.bi_opportunity} == {None}
    assert {row["forecast_category_override"] for row in projected.bi_opportunity} == {None}
    for row in projected.bi_opportunity:
        deferred = row["status"] == "deferred"
        assert (row["deferred_reason"] == "other") is deferred
        assert (row["deferred_note"] is not None) is deferred


def test_the_api_shows_every_golden_opportunity_and_records_after_it(golden: Golden) -> None:
    """The listing rows and positions the old code kept still serve; a new command is
    recorded after the stored events (the notification sequence continues)."""
    expected = golden.opportunities
    now = datetime.now(UTC)
    service = build_app(
        Settings(eventstore_url=golden.store_url),
        rules=load_rulebook(),
        principals=PRINCIPALS,
        clock=lambda: now,
    )
    with TestClient(service) as http:
        listed = http.get("/opportunities", params={"limit": 500}, headers=auth("admin")).json()
        assert sorted(item["id"] for item in listed["items"]) == sorted(expected)
        for oid, state in expected.items():
            shown = http.get(f"/opportunities/{oid}", headers=auth("admin")).json()
            # The customer's key persons came after the release: its customers have none.
            assert shown["customer"].pop("key_persons") == []
            assert {k: shown[k] for k in state if k != "kind"} == {
                k: v for k, v in state.items() if k != "kind"
            }
        busy = max(expected, key=lambda oid: expected[oid]["version"])
        answer = http.post(
            f"/opportunities/{busy}/follow-ups",
            json={"kind": "call", "note": "after the upgrade"},
            headers=auth(expected[busy]["owner_id"]),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == expected[busy]["version"] + 1
        feed = http.get("/notifications", params={"after": 0}, headers=auth("service")).json()
    last = golden.notifications["items"][-1]["position"]
    assert [i["position"] for i in feed["items"]][:-1] == [
        i["position"] for i in golden.notifications["items"]
    ]
    assert feed["items"][-1]["position"] > last
    assert feed["items"][-1]["envelope"]["version"] == expected[busy]["version"] + 1


# -- old and new topics in one store ---------------------------------------------------------------


def record_under_todays_topics(golden: Golden) -> dict[str, Any]:
    """Commands given with today's code on the golden store: two follow-ups on its busiest
    opportunity (whose older events and snapshot name the old topics) and a new opportunity
    (which records its customer too), advanced. What the API answered last for each."""
    busy = max(golden.opportunities, key=lambda oid: golden.opportunities[oid]["version"])
    owner = golden.opportunities[busy]["owner_id"]
    service = build_app(
        Settings(eventstore_url=golden.store_url), rules=load_rulebook(), principals=PRINCIPALS
    )
    with TestClient(service) as http:
        for n in (1, 2):
            answer = http.post(
                f"/opportunities/{busy}/follow-ups",
                json={"kind": "call", "note": f"call {n} after the upgrade"},
                headers=auth(owner),
            )
            assert answer.status_code == 200, answer.text
        created = http.post(
            "/opportunities",
            json={"type": "new", "customer": customer()},
            headers=auth("rep-1"),
        )
        assert created.status_code == 201, created.text
        advanced = http.post(
            f"/opportunities/{created.json()['id']}/advance",
            json={"to_stage": "requirements"},
            headers=auth("rep-1"),
        )
        assert advanced.status_code == 200, advanced.text
    return {busy: answer.json(), created.json()["id"]: advanced.json()}


def test_a_store_with_old_and_new_topics_replays_and_feeds_every_event_in_order(
    golden: Golden,
) -> None:
    answered = record_under_todays_topics(golden)
    todays = f"{Opportunity.__module__}:{Opportunity.__qualname__}."
    with reading.opened(golden.store_url) as app:
        stored = reading.stored_topics(app, golden.store_url)
        replayed = {oid: app.repository.get(UUID(oid)) for oid in answered}
        from_events = {oid: reading.replayed_from_events(app, UUID(oid)) for oid in answered}
        items = reading.feed(app)
    assert f"{todays}FollowUpLogged" in stored
    assert "opportunity.domain:Opportunity.FollowUpLogged" in stored
    for oid, answer in answered.items():
        assert replayed[oid].version == answer["version"]
        assert from_events[oid] == reading.describe(replayed[oid]), oid
        assert replayed[oid].stage == answer["stage"]
    # The feed is the golden one, then today's events, each opportunity's versions one by one.
    expected = golden.notifications["items"]
    assert items[: len(expected)] == expected
    positions = [item["position"] for item in items]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)
    versions: dict[str, list[int]] = defaultdict(list)
    for item in items:
        versions[item["envelope"]["opportunity_id"]].append(item["envelope"]["version"])
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    added = [item["envelope"] for item in items[len(expected) :]]
    busy, created = answered
    customer_record = str(CustomerRecord.create_id(answered[created]["customer"]["uscc"]))
    assert [(e["opportunity_id"], e["event_type"]) for e in added] == [
        (busy, "FollowUpLogged"),
        (busy, "FollowUpLogged"),
        (created, "OpportunityCreated"),
        (customer_record, "CustomerRecorded"),
        (created, "StageAdvanced"),
    ]


# -- through a real broker ------------------------------------------------------------------------


def by_opportunity(records: list[Consumed]) -> dict[str, list[dict[str, Any]]]:
    """Each opportunity's envelopes as a consumer reads them, redeliveries dropped."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = record.json()
        if envelope["event_id"] not in seen:
            seen.add(envelope["event_id"])
            found[envelope["opportunity_id"]].append(envelope)
    return found


def recorded_by_opportunity(envelopes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each opportunity's envelopes as the store recorded them."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for envelope in envelopes:
        found[envelope["opportunity_id"]].append(envelope)
    return found


@pytest.mark.slow
async def test_the_relay_publishes_every_stored_event_to_kafka(
    golden: Golden, kafka: TestBroker
) -> None:
    """The relay as the composition root wires it on the old store (its own tables made as
    a start makes them), run alone: no consumer joins a group of the session's broker."""
    expected = golden.notifications
    envelopes = [item["envelope"] for item in expected["items"]]
    ids = {e["opportunity_id"].encode() for e in envelopes}
    settings = Settings(
        eventstore_url=golden.store_url,
        kafka_bootstrap=kafka.bootstrap,
        relay_batch=20,  # several batches, each confirmed before the next
        relay_idle_poll_ms=10,
    )
    await ensure_topics(settings, [topics.OPPORTUNITY_EVENTS, topics.OPPORTUNITY_WON])
    starts = {
        topic: await asyncio.to_thread(end_offsets, kafka.bootstrap, topic)
        for topic in (topics.OPPORTUNITY_EVENTS, topics.OPPORTUNITY_WON)
    }
    service = build_app(settings, rules=load_rulebook(), principals=PRINCIPALS)
    api = service.state.api
    assert api.messaging is not None
    running = asyncio.create_task(api.messaging.relay.run())
    try:
        events, won = [
            await asyncio.to_thread(
                collect,
                kafka.bootstrap,
                topic,
                lambda r: r.key in ids,
                count,
                ARRIVAL_DEADLINE,
                start=starts[topic],
                distinct=event_id,
            )
            for topic, count in (
                (topics.OPPORTUNITY_EVENTS, len(envelopes)),
                (topics.OPPORTUNITY_WON, len(expected["won"])),
            )
        ]
        top = api.app.last_position()
        # The position is stored just after the broker acknowledged the last batch.
        await asyncio.to_thread(
            wait_until,
            lambda: stored_relay_position(golden.store_url) == top,
            10.0,
            "the relay stored the end of the log as its position",
        )
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        api.app.close()

    arrived = by_opportunity(events)
    assert arrived == recorded_by_opportunity(envelopes)
    for record in events:
        assert record.header("event_type") == record.json()["event_type"].encode()
        assert record.key == record.json()["opportunity_id"].encode()
    assert {event_id(r): r.json() for r in won} == {m["event_id"]: m for m in expected["won"]}


@pytest.mark.slow
async def test_the_relay_publishes_events_of_old_and_new_topics_in_order(
    golden: Golden, kafka: TestBroker
) -> None:
    """A store written by v0.5.0 and then by today's code: the relay sends every event of
    each opportunity, old topics and new, in version order."""
    answered = await asyncio.to_thread(record_under_todays_topics, golden)
    with reading.opened(golden.store_url) as app:
        envelopes = [item["envelope"] for item in reading.feed(app)]
    ids = {e["opportunity_id"].encode() for e in envelopes}
    settings = Settings(
        eventstore_url=golden.store_url,
        kafka_bootstrap=kafka.bootstrap,
        relay_batch=20,
        relay_idle_poll_ms=10,
    )
    await ensure_topics(settings, [topics.OPPORTUNITY_EVENTS, topics.OPPORTUNITY_WON])
    start = await asyncio.to_thread(end_offsets, kafka.bootstrap, topics.OPPORTUNITY_EVENTS)
    service = build_app(settings, rules=load_rulebook(), principals=PRINCIPALS)
    api = service.state.api
    assert api.messaging is not None
    running = asyncio.create_task(api.messaging.relay.run())
    try:
        events = await asyncio.to_thread(
            collect,
            kafka.bootstrap,
            topics.OPPORTUNITY_EVENTS,
            lambda r: r.key in ids,
            len(envelopes),
            ARRIVAL_DEADLINE,
            start=start,
            distinct=event_id,
        )
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        api.app.close()

    arrived = by_opportunity(events)
    assert arrived == recorded_by_opportunity(envelopes)
    for oid, answer in answered.items():
        assert [e["version"] for e in arrived[oid]] == list(range(1, answer["version"] + 1))


def stored_relay_position(store_url: str) -> int:
    engine = sa.create_engine(sqlalchemy_url(store_url))
    try:
        with engine.connect() as conn:
            return read_position(conn, "relay")
    finally:
        engine.dispose()
