"""Applying events exactly once in effect (SPEC §3.1, §7): redeliveries, batch boundaries,
version gaps, unknown event types, records that are not events, stored positions."""

import random
from dataclasses import dataclass
from datetime import date

import orjson
import sqlalchemy as sa

from projections.adapters.feed import read_listed
from services.projections.tests.cohort import cohort
from services.projections.tests.conftest import Service, snapshot
from services.projections.tests.history import History, day, envelopes_of

TOPIC = "crm.opportunity.events"


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def records(
    envelopes: list[dict[str, object]], partition: int = 0, start: int = 0
) -> list[FakeRecord]:
    return [
        FakeRecord(TOPIC, partition, start + i, orjson.dumps(e)) for i, e in enumerate(envelopes)
    ]


def test_the_same_events_twice_change_nothing(service: Service) -> None:
    envelopes = envelopes_of(*cohort().values())
    service.feed_envelopes(envelopes)
    once = snapshot(service.store.engine)

    outcome = service.feed_envelopes(envelopes)

    assert outcome.applied == 0
    assert outcome.duplicates == len(envelopes)
    assert snapshot(service.store.engine) == once


def test_batch_boundaries_and_redeliveries_give_identical_tables(service: Service) -> None:
    envelopes = envelopes_of(*cohort().values())
    service.feed_envelopes(envelopes)
    expected = snapshot(service.store.engine)
    service.store.engine.dispose()
    with service.store.engine.begin() as conn:
        for table in reversed(service.store.tables.metadata.sorted_tables):
            conn.execute(sa.delete(table))

    # Redeliver with repeats, in batches of random sizes, each opportunity's events in order
    # except that a batch may repeat earlier events (as after a crash).
    rng = random.Random(7)
    position = 0
    while position < len(envelopes):
        size = rng.randint(1, 6)
        replay_from = max(0, position - rng.randint(0, 4))
        service.feed_envelopes(envelopes[replay_from : position + size])
        position += size

    assert snapshot(service.store.engine) == expected


def test_a_version_gap_holds_later_events_until_the_missing_one_arrives(
    service: Service,
) -> None:
    h = History(day(0)).advance("requirements", day(1)).advance("proposal", day(2)).win(day(3))
    first, second, third, fourth = h.envelopes

    gap = service.feed_envelopes([first, third, fourth])
    stalled = service.get("/funnel")

    assert (gap.applied, gap.held, gap.gaps) == (1, 2, 1)
    new = next(p for p in stalled["pipelines"] if p["pipeline_id"] == "new")
    assert new["won"] == 0  # not mis-projected: still at its first stage
    assert new["stages"][1]["reached"] == 0
    with service.store.engine.connect() as conn:
        awaiting = conn.execute(
            sa.select(service.store.tables.opportunity.c.awaiting_version)
        ).scalar_one()
    assert awaiting == 2
    metrics = service.client.get("/metrics").text
    assert "oppstream_projection_held_events" in metrics

    filled = service.feed_envelopes([second])

    assert (filled.applied, filled.released) == (3, 2)
    assert service.store.held_count() == 0
    new = next(p for p in service.get("/funnel")["pipelines"] if p["pipeline_id"] == "new")
    assert new["won"] == 1


def test_a_gap_before_the_creation_holds_everything_after_it(service: Service) -> None:
    h = History(day(0)).advance("requirements", day(1))

    held = service.feed_envelopes(h.envelopes[1:])
    released = service.feed_envelopes(h.envelopes[:1])

    assert (held.applied, held.held, held.gaps) == (0, 1, 1)
    assert (released.applied, released.released) == (2, 1)


def test_unknown_event_types_are_recorded_skipped_and_counted(service: Service) -> None:
    h = History(day(0)).unknown(day(1)).advance("requirements", day(2))

    outcome = service.feed(h)

    assert (outcome.applied, outcome.not_projected) == (3, 1)
    stages = next(p for p in service.get("/funnel")["pipelines"] if p["pipeline_id"] == "new")
    assert stages["stages"][1]["reached"] == 1
    with service.store.engine.connect() as conn:
        kinds = conn.execute(
            sa.select(
                service.store.tables.event.c.event_type, service.store.tables.event.c.projected
            ).order_by(service.store.tables.event.c.version)
        ).all()
    assert [tuple(k) for k in kinds] == [
        ("OpportunityCreated", True),
        ("SomethingNewLater", False),
        ("StageAdvanced", True),
    ]


def test_records_that_are_not_events_are_kept_aside_and_the_rest_applied(
    service: Service,
) -> None:
    good = History(day(0)).envelopes
    batch = [
        FakeRecord(TOPIC, 0, 0, b"not json"),
        FakeRecord(TOPIC, 0, 1, orjson.dumps({"event_id": "x"})),
        *records(good, start=2),
    ]

    outcome = service.store.apply_records(batch)

    assert (outcome.poison, outcome.applied) == (2, 1)
    with service.store.engine.connect() as conn:
        poison = conn.execute(
            sa.select(service.store.tables.poison.c.offset, service.store.tables.poison.c.error)
        ).all()
    assert [row[0] for row in poison] == [0, 1]
    assert service.store.positions(TOPIC) == {0: 3}


def test_records_before_the_stored_position_are_skipped(service: Service) -> None:
    envelopes = envelopes_of(*cohort().values())
    service.store.apply_records(records(envelopes[:10]))

    outcome = service.store.apply_records(records(envelopes[:15]), {(TOPIC, 0): 10})

    assert (outcome.already_applied, outcome.applied, outcome.duplicates) == (10, 5, 0)
    assert service.store.positions(TOPIC) == {0: 15}


def test_a_stored_position_behind_the_consumer_rewinds_the_partition(service: Service) -> None:
    envelopes = envelopes_of(*cohort().values())
    service.store.apply_records(records(envelopes[:10]))

    # This consumer believes 20 is stored (it applied up to there before the tables were
    # switched by a rebuild): the table says 10, so it must read from 10 again.
    outcome = service.store.apply_records(records(envelopes[20:25], start=20), {(TOPIC, 0): 20})

    assert outcome.rewind == {(TOPIC, 0): 10}
    assert outcome.applied == 0
    assert service.store.positions(TOPIC) == {0: 10}


def test_an_offset_gap_after_our_own_position_is_not_a_rewind(service: Service) -> None:
    envelopes = envelopes_of(*cohort().values())
    service.store.apply_records(records(envelopes[:10]))

    outcome = service.store.apply_records(records(envelopes[10:12], start=15), {(TOPIC, 0): 10})

    assert outcome.rewind == {}
    assert service.store.positions(TOPIC) == {0: 17}


def test_lose_and_void_while_paused_count_the_pause_up_to_then(service: Service) -> None:
    lost = History(day(0)).pause(day(1)).lose(day(4))
    voided = History(day(0)).pause(day(2)).void(day(3), previous_status="paused")
    deferred = History(day(0)).pause(day(1)).defer(day(2), date(2026, 6, 1)).lose(day(6))
    service.feed(lost, voided, deferred)

    with service.store.engine.connect() as conn:
        v = service.store.tables.visit
        rows = {
            oid: (paused, deferred, dwell)
            for oid, paused, deferred, dwell in conn.execute(
                sa.select(
                    v.c.opportunity_id, v.c.paused_seconds, v.c.deferred_seconds, v.c.dwell_seconds
                )
            )
        }
    day_s = 86400.0
    assert tuple(rows[lost.id]) == (3 * day_s, 0.0, 1 * day_s)
    assert tuple(rows[voided.id]) == (1 * day_s, 0.0, 2 * day_s)
    assert tuple(rows[deferred.id]) == (1 * day_s, 4 * day_s, 5 * day_s)
    assert read_listed(lost.envelopes[0]).opportunity_id == lost.id


def test_positions_gone_from_under_the_consumer_rewind_it_to_the_beginning_once(
    service: Service,
) -> None:
    envelopes = envelopes_of(*cohort().values())

    # Nothing is stored, yet this consumer stored 10 before (the tables were switched).
    gone = service.store.apply_records(records(envelopes[10:20], start=10), {(TOPIC, 0): 10})
    # Read again from the beginning, with nothing believed stored: it is applied.
    again = service.store.apply_records(records(envelopes[:20]), {})

    assert gone.rewind == {(TOPIC, 0): None}
    assert (again.rewind, again.applied) == ({}, 20)
