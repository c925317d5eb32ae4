"""Hostile input on the events topic (SPEC §3.1, §7): the consumer against a real broker, fed
a seeded corpus of hostile records (tests.support.hostile) shuffled between the events of a
few opportunities and their redeliveries.

The consumer goes on: every event around the hostile records is applied. A record that is no
envelope is kept in `projection_poison` (its position, bytes and error), counted, and never
read again; it changes no table. An event of a type this service does not know, or with a
payload of a schema version it cannot read, only moves its opportunity's version on.
"""

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from contracts.envelope import event_id_for
from contracts.rules import load_rulebook
from projections.adapters.store import Store
from projections.main import build_app
from projections.settings import Settings
from services.projections.tests.history import History, day
from tests.support import hostile
from tests.support.hostile import Hostile
from tests.support.kafka import TestBroker
from tests.support.polling import poll
from tests.support.principals import PRINCIPALS
from tests.support.topics import Outgoing, end_offsets, publish

pytestmark = pytest.mark.slow

SEED = hostile.seed()
DEADLINE = 30.0
ENVELOPE_FIELDS = (
    "event_id",
    "event_type",
    "schema_version",
    "opportunity_id",
    "version",
    "occurred_at",
    "recorded_at",
    "actor",
    "payload",
)


@contextmanager
def running(kafka: TestBroker, db_url: str, topic: str) -> Iterator[TestClient]:
    settings = Settings(
        projections_db_url=db_url,
        kafka_bootstrap=kafka.bootstrap,
        projections_topic=topic,
        projections_group=f"projections-{uuid.uuid4().hex[:6]}",
        topic_partitions=3,
        kafka_session_timeout_ms=6000,
        kafka_fetch_max_wait_ms=10,
    )
    app = build_app(settings, rules=load_rulebook(), principals=PRINCIPALS)
    with TestClient(app) as client:
        poll(lambda: client.get("/readyz").status_code, lambda code: code == 200, DEADLINE)
        yield client


def metric(client: TestClient, outcome: str) -> float:
    name = f'oppstream_projection_events_total{{outcome="{outcome}"}}'
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def future_schema(history: History) -> History:
    """The next event of `history`: a StageAdvanced of schema version 2, whose payload the
    version 1 model refuses."""
    version = len(history.envelopes) + 1
    at = day(6)
    history.envelopes.append(
        {
            "event_id": event_id_for(history.id, version),
            "event_type": "StageAdvanced",
            "schema_version": 2,
            "opportunity_id": history.id,
            "version": version,
            "occurred_at": at.isoformat(),
            "recorded_at": (at + timedelta(milliseconds=5)).isoformat(),
            "actor": "rep-1",
            "payload": {"stages": {"from": history.stage, "to": "negotiation"}},
        }
    )
    return history


def hostile_records(rng: random.Random, template: dict[str, Any]) -> list[Hostile]:
    """Records that are no envelope; those built from `template` (an event of the stream)
    have one thing wrong each."""

    def changed(case: str, **fields: Any) -> Hostile:
        return Hostile(case, orjson.dumps({**template, **fields}))

    # The creation of an opportunity nothing else names: if it were applied, it would show.
    creation = History(day(3)).envelopes[0]

    return [
        *hostile.shapeless(rng, orjson.dumps(template)),
        *hostile.without(template, ENVELOPE_FIELDS),
        *hostile.mistyped(rng, template, ENVELOPE_FIELDS),
        *hostile.huge(rng, template, ["occurred_at", "version", "payload"]),
        hostile.nested(template, "opportunity_id"),
        changed("version 0", version=0),
        changed("negative version", version=-1),
        changed("boolean version", version=True),
        changed("fractional version", version=2.5),
        changed("version beyond 64 bits", version=2**64 - 1),
        changed("schema_version 0", schema_version=0),
        Hostile(
            "schema_version beyond 64 bits",
            orjson.dumps({**creation, "schema_version": 2**64 - 1}),
        ),
        changed("naive occurred_at", occurred_at="2026-03-02T09:00:00"),
        changed("occurred_at not a date", occurred_at="next tuesday"),
        changed("occurred_at before year 1 in UTC", occurred_at="0001-01-01T00:00:00+01:00"),
        changed("recorded_at after 9999 in UTC", recorded_at="9999-12-31T23:59:59-01:00"),
    ]


def table_rows(store: Store, name: str) -> list[Any]:
    table = store.tables.by_canonical_name()[name]
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(table)).mappings())


def test_hostile_records_are_kept_as_poison_and_the_events_between_them_are_applied(
    kafka: TestBroker, db_url: str
) -> None:
    rng = random.Random(SEED)
    topic = f"test.hostile.{uuid.uuid4().hex[:8]}"
    plain = [
        History(day(0)).advance("requirements", day(2)).advance("proposal", day(5)),
        History(day(0)).follow_up(day(1)).advance("proposal", day(3), ("requirements",)),
        History(day(1)).pause(day(2)).resume(day(4)).advance("requirements", day(5)),
        History(day(1)).advance("requirements", day(2)).lose(day(6)),
    ]
    unknown = History(day(2)).unknown(day(3)).advance("requirements", day(7))
    future = future_schema(History(day(2))).advance("requirements", day(7))
    histories = [*plain, unknown, future]
    events = [e for h in histories for e in h.envelopes]
    valid = [Outgoing(orjson.dumps(e), e["opportunity_id"].encode()) for e in events]
    redelivered = [valid[1], valid[len(valid) // 2], valid[-1]]
    draw_key = hostile.keys(rng, *(h.id.encode() for h in histories))
    bad = [case.keyed(draw_key()) for case in hostile_records(rng, plain[0].envelopes[1])]
    # An event PostgreSQL cannot store (SQLite can): the creation of an opportunity whose
    # customer's name holds a NUL character.
    nul = hostile.with_nul(History(day(4)).envelopes[0], "payload.customer.name").keyed(draw_key())
    records = hostile.shuffled_between(rng, [*valid, *redelivered], [*bad, nul])

    with running(kafka, db_url, topic) as client:
        landed = publish(
            kafka.bootstrap,
            topic,
            [r if isinstance(r, Outgoing) else Outgoing(r.value, r.key) for r in records],
        )
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        nul_is_poison = store.engine.dialect.name == "postgresql"
        ends = {p: o for p, o in end_offsets(kafka.bootstrap, topic).items() if o}
        poll(lambda: store.positions(topic), lambda p: p == ends, DEADLINE)

        kept = {
            (row["partition"], row["offset"]): row for row in table_rows(store, "projection_poison")
        }
        for record, (partition, offset) in zip(records, landed, strict=True):
            if isinstance(record, Hostile) and (record is not nul or nul_is_poison):
                row = kept.pop((partition, offset), None)
                assert row is not None, f"seed {SEED}: {record.case!r} is not kept as poison"
                assert row["topic"] == topic
                assert row["value"] == record.value, f"seed {SEED}: {record.case!r} changed"
                assert row["error"], f"seed {SEED}: {record.case!r} kept without its error"
        assert kept == {}, f"seed {SEED}: events kept as poison: {sorted(kept)}"

        opportunities = {row["id"]: row for row in table_rows(store, "bi_opportunity")}
        nul_id = orjson.loads(nul.value or b"")["opportunity_id"]
        assert opportunities.pop(nul_id, None) is None or not nul_is_poison
        assert set(opportunities) == {h.id for h in histories}
        for history in histories:
            row = opportunities[history.id]
            assert (row["version"], row["stage"]) == (len(history.envelopes), history.stage)
        assert opportunities[plain[2].id]["status"] == "open"
        assert opportunities[plain[3].id]["status"] == "lost"
        stored = {(row["opportunity_id"], row["version"]) for row in table_rows(store, "bi_event")}
        stored.discard((nul_id, 1))
        assert stored == {(e["opportunity_id"], e["version"]) for e in events}
        assert table_rows(store, "projection_held_event") == []

        expected = {
            "poison": len(bad) + nul_is_poison,
            "applied": len(events) + (not nul_is_poison),
            "duplicates": len(redelivered),
            "not_projected": 2,  # the unknown type, the future schema
        }
        # The consumer counts a batch once it is all stored: the last count may come a moment
        # after the last position.
        counted = poll(lambda: {o: metric(client, o) for o in expected}, expected.__eq__, DEADLINE)
        assert counted == expected
