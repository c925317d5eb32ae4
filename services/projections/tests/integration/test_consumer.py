"""The consumer against a real broker: events from the topic into the tables, positions stored
with them, seeking to the stored positions when partitions are assigned (SPEC §7)."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from contracts.rules import load_rulebook
from projections.main import build_app
from projections.settings import Settings
from services.projections.tests.cohort import cohort
from services.projections.tests.history import envelopes_of
from services.projections.tests.integration.test_customer_tables import (
    a_customer_and_its_opportunity,
)
from tests.support.kafka import TestBroker
from tests.support.polling import poll
from tests.support.principals import PRINCIPALS, auth
from tests.support.topics import Outgoing, end_offsets, publish

pytestmark = pytest.mark.slow


def settings_for(kafka: TestBroker, db_url: str, topic: str, group: str) -> Settings:
    return Settings(
        projections_db_url=db_url,
        kafka_bootstrap=kafka.bootstrap,
        projections_topic=topic,
        projections_group=group,
        topic_partitions=3,
        kafka_session_timeout_ms=6000,
        kafka_fetch_max_wait_ms=10,
    )


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    app = build_app(settings, rules=load_rulebook(), principals=PRINCIPALS)
    with TestClient(app) as client:
        poll(lambda: client.get("/readyz").status_code, lambda code: code == 200)
        yield client


def published(kafka: TestBroker, topic: str, envelopes: list[dict[str, Any]]) -> None:
    publish(
        kafka.bootstrap,
        topic,
        [Outgoing(orjson.dumps(e), str(e["opportunity_id"]).encode()) for e in envelopes],
    )


def reached(client: TestClient) -> list[int]:
    report = client.get("/funnel", headers=auth("viewer")).json()
    new = next(p for p in report["pipelines"] if p["pipeline_id"] == "new")
    return [s["reached"] for s in new["stages"]]


def metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_events_on_the_topic_reach_the_tables_with_their_positions_exactly_once(
    kafka: TestBroker, tmp_path: Path
) -> None:
    topic, group = f"test.projections.{uuid.uuid4().hex[:8]}", f"projections-{uuid.uuid4().hex[:6]}"
    settings = settings_for(kafka, f"sqlite:///{tmp_path}/projections.db", topic, group)
    envelopes = envelopes_of(*cohort().values())

    with running(settings) as client:
        published(kafka, topic, envelopes)
        poll(lambda: reached(client), lambda r: r == [6, 3, 3, 2, 1])
        # The same events again (a relay that crashed before storing its position).
        published(kafka, topic, envelopes)
        poll(
            lambda: metric(client, 'oppstream_projection_events_total{outcome="duplicates"}'),
            lambda n: n == len(envelopes),
        )
        assert reached(client) == [6, 3, 3, 2, 1]
        assert metric(client, 'oppstream_projection_events_total{outcome="applied"}') == len(
            envelopes
        )
        store = client.app.state.store  # type: ignore[attr-defined]
        ends = end_offsets(kafka.bootstrap, topic)
        poll(lambda: store.positions(topic), lambda p: p == {k: v for k, v in ends.items() if v})

    # Started again on the same tables: it reads on from the stored positions, so nothing
    # is taken twice, not even as a duplicate.
    more = envelopes_of(*cohort().values())
    with running(settings) as client:
        published(kafka, topic, more)
        poll(lambda: reached(client), lambda r: r == [12, 6, 6, 4, 2])
        assert metric(client, 'oppstream_projection_events_total{outcome="duplicates"}') == 0
        assert metric(client, 'oppstream_projection_events_total{outcome="already_applied"}') == 0
        assert metric(client, 'oppstream_projection_events_total{outcome="applied"}') == len(more)


def test_customer_record_events_on_the_topic_fill_their_tables_and_are_counted_as_applied(
    kafka: TestBroker, tmp_path: Path
) -> None:
    topic, group = f"test.projections.{uuid.uuid4().hex[:8]}", f"projections-{uuid.uuid4().hex[:6]}"
    settings = settings_for(kafka, f"sqlite:///{tmp_path}/projections.db", topic, group)
    opportunity, customer = a_customer_and_its_opportunity()
    envelopes = envelopes_of(opportunity, customer)

    with running(settings) as client:
        published(kafka, topic, envelopes)
        applied = 'oppstream_projection_events_total{outcome="applied"}'
        poll(lambda: metric(client, applied), lambda n: n == len(envelopes))
        store = client.app.state.store  # type: ignore[attr-defined]
        with store.engine.connect() as conn:
            found = conn.execute(
                sa.select(store.tables.customer.c.key_persons, store.tables.customer.c.version)
            ).one()
        assert tuple(found) == (1, 5)
        for outcome in ("held", "duplicates", "poison", "not_projected"):
            assert metric(client, f'oppstream_projection_events_total{{outcome="{outcome}"}}') == 0
        assert metric(client, "oppstream_projection_version_gaps_total") == 0
        assert metric(client, "oppstream_projection_held_events") == 0
