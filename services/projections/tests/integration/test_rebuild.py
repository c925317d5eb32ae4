"""The rebuild (SPEC §7): the history replayed from the opportunity service's feed into fresh
tables, switched in; the result equals what the consumer built, row for row."""

from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from fastapi.testclient import TestClient

from contracts.opportunity import PAYLOADS
from contracts.rules import load_rulebook
from opportunity.main import build_app as build_opportunity_app
from opportunity.settings import Settings as OpportunitySettings
from projections.adapters.shadow import SHADOW_PREFIX
from projections.entrypoints import rebuild
from projections.settings import Settings
from services.projections.tests.cohort import cohort
from services.projections.tests.conftest import Service, snapshot
from services.projections.tests.customers import CustomerHistory
from services.projections.tests.history import History, day, envelopes_of
from services.projections.tests.integration.test_customer_tables import (
    a_customer_and_its_opportunity,
)
from services.projections.tests.integration.test_store import records
from tests.support.principals import PRINCIPALS, TOKENS, auth, customer

TOKEN = "token-service-0123456789abcdef"


def feed(envelopes: list[dict[str, Any]], token: str = TOKEN) -> httpx.MockTransport:
    """The opportunity service's `GET /notifications` over these envelopes (positions 1…N)."""
    items = [{"position": i + 1, "envelope": e} for i, e in enumerate(envelopes)]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return httpx.Response(401, json={"detail": {"error": "unauthenticated"}})
        if request.url.path == "/readyz":
            return httpx.Response(200, json={"status": "ready", "last_position": len(items)})
        assert request.url.path == "/notifications"
        after, limit = int(request.url.params["after"]), int(request.url.params["limit"])
        page = items[after : after + limit]
        next_after = page[-1]["position"] if page else after
        return httpx.Response(
            200, content=orjson.dumps({"after": after, "items": page, "next_after": next_after})
        )

    return httpx.MockTransport(answer)


def live_by_consumer(service: Service, envelopes: list[dict[str, Any]]) -> None:
    """Apply as the consumer does: batches of records, positions stored with them."""
    batch = records(envelopes)
    for start in range(0, len(batch), 7):
        service.store.apply_records(batch[start : start + 7])


def settings_of(service: Service) -> Settings:
    return Settings(
        projections_db_url=service.store.engine.url.render_as_string(hide_password=False).replace(
            "postgresql+psycopg://", "postgresql://"
        )
    )


def test_rebuild_equals_the_live_tables_row_for_row(service: Service) -> None:
    histories = cohort()
    envelopes = envelopes_of(*histories.values(), History(day(3)).unknown(day(4)))
    live_by_consumer(service, envelopes)
    before = snapshot(service.store.engine, with_positions=True)
    funnel = service.get("/funnel")

    code = rebuild.run(
        "http://opportunity",
        TOKEN,
        settings_of(service),
        transport=feed(envelopes),
        page=4,
        progress=False,
    )

    assert code == 0
    after = snapshot(service.store.engine, with_positions=True)
    assert after == before
    assert service.get("/funnel") == funnel
    with service.store.engine.connect() as conn:
        views = conn.execute(
            sa.text("SELECT SUM(reached) FROM bi_funnel WHERE stage_index = 0")
        ).scalar()
        names = set(sa.inspect(conn).get_table_names())
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("bi_opportunity")}
    assert views == 7
    assert not any(name.startswith(SHADOW_PREFIX) for name in names)
    assert "ix_bi_opportunity_created_at" in indexes


def test_rebuild_builds_the_customer_tables_the_consumer_built(service: Service) -> None:
    opportunity, customer = a_customer_and_its_opportunity()
    late = CustomerHistory(day(2)).profiled(day(6), tier="SMB").add("p-1", day(7))
    envelopes = envelopes_of(*cohort().values(), opportunity, customer, late)
    live_by_consumer(service, envelopes)
    before = snapshot(service.store.engine, with_positions=True)

    code = rebuild.run(
        "http://opportunity",
        TOKEN,
        settings_of(service),
        transport=feed(envelopes),
        page=3,
        progress=False,
    )

    assert code == 0
    after = snapshot(service.store.engine, with_positions=True)
    assert after == before
    assert (len(after["bi_customer"]), len(after["bi_key_person"])) == (2, 3)
    with service.store.engine.connect() as conn:
        indexes = {i["name"]: i["unique"] for i in sa.inspect(conn).get_indexes("bi_customer")}
    assert indexes == {"ix_bi_customer_record_id": True}


def test_rebuild_twice_and_the_consumer_goes_on_after_it(service: Service) -> None:
    envelopes = envelopes_of(*cohort().values())
    live_by_consumer(service, envelopes[:20])
    settings = settings_of(service)

    assert (
        rebuild.run("http://x", TOKEN, settings, transport=feed(envelopes[:20]), progress=False)
        == 0
    )
    assert (
        rebuild.run("http://x", TOKEN, settings, transport=feed(envelopes[:20]), progress=False)
        == 0
    )
    live_by_consumer_rest = records(envelopes)[20:]
    outcome = service.store.apply_records(
        live_by_consumer_rest, {("crm.opportunity.events", 0): 20}
    )

    assert outcome.applied == len(envelopes) - 20
    new = next(p for p in service.get("/funnel")["pipelines"] if p["pipeline_id"] == "new")
    assert [s["reached"] for s in new["stages"]] == [6, 3, 3, 2, 1]


def test_rebuild_with_a_refused_token_changes_nothing(service: Service) -> None:
    envelopes = envelopes_of(*cohort().values())
    live_by_consumer(service, envelopes)
    before = snapshot(service.store.engine, with_positions=True)

    code = rebuild.run(
        "http://x",
        "wrong-token-0123456789",
        settings_of(service),
        transport=feed(envelopes),
        progress=False,
    )

    assert code == rebuild.REFUSED
    assert snapshot(service.store.engine, with_positions=True) == before


def test_rebuild_from_the_real_opportunity_service_feed_equals_the_consumers_tables(
    service: Service, tmp_path: Path
) -> None:
    opportunities = build_opportunity_app(
        OpportunitySettings(eventstore_url=f"sqlite:///{tmp_path}/eventstore.db"),
        rules=load_rulebook(),
        principals=PRINCIPALS,
    )
    admin = auth("admin")
    with TestClient(opportunities) as ops:
        ids = []
        for _ in range(3):
            created = ops.post(
                "/opportunities",
                json={
                    "type": "new",
                    "customer": customer(),
                    "owner_id": "rep-1",
                    "team_id": "east",
                },
                headers=admin,
            )
            ids.append(created.json()["id"])
        ops.post(f"/opportunities/{ids[0]}/advance", json={"to_stage": "proposal"}, headers=admin)
        ops.post(f"/opportunities/{ids[1]}/pause", json={"reason": "budget"}, headers=admin)
        ops.post(f"/opportunities/{ids[1]}/lose", json={"reason": "price"}, headers=admin)
        ops.post(f"/opportunities/{ids[2]}/void", json={"reason": "duplicate"}, headers=admin)
        feed_items = ops.get("/notifications", params={"limit": 1000}, headers=admin).json()[
            "items"
        ]
        # The consumer's way: the same envelopes as Kafka records, in batches.
        live_by_consumer(service, [item["envelope"] for item in feed_items])
        before = snapshot(service.store.engine)

        code = rebuild.run(
            str(ops.base_url),
            TOKENS["service"],
            settings_of(service),
            transport=ops._transport,
            page=2,
            progress=False,
        )

    assert code == 0
    # The feed carries each create's CustomerRecorded too (SPEC §8.1); bi_event holds every event.
    opportunity_items = [i for i in feed_items if i["envelope"]["event_type"] in PAYLOADS]
    assert len(opportunity_items) == 7
    assert len(before["bi_event"]) == len(feed_items) == 10
    assert snapshot(service.store.engine) == before
