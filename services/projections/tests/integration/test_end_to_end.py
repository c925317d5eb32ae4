"""End to end: the real opportunity service (its relay publishing to Kafka) and the
projections consumer on the same broker; commands over HTTP become a funnel."""

import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from contracts.rules import load_rulebook
from opportunity.main import build_app as build_opportunity_app
from opportunity.settings import Settings as OpportunitySettings
from projections.main import build_app
from projections.settings import Settings
from tests.support.kafka import TestBroker
from tests.support.polling import poll
from tests.support.principals import PRINCIPALS, auth, customer

pytestmark = pytest.mark.slow


def test_commands_on_the_opportunity_service_become_the_funnel(
    kafka: TestBroker, tmp_path: Path
) -> None:
    kafka_settings = {
        "kafka_bootstrap": kafka.bootstrap,
        "topic_partitions": 6,
        "kafka_session_timeout_ms": 6000,
        "kafka_fetch_max_wait_ms": 10,
    }
    opportunities = build_opportunity_app(
        OpportunitySettings(eventstore_url=f"sqlite:///{tmp_path}/eventstore.db", **kafka_settings),
        rules=load_rulebook(),
        principals=PRINCIPALS,
    )
    projections = build_app(
        Settings(
            projections_db_url=f"sqlite:///{tmp_path}/projections.db",
            projections_group=f"projections-{uuid.uuid4().hex[:6]}",
            **kafka_settings,
        ),
        rules=load_rulebook(),
        principals=PRINCIPALS,
    )
    # The session's topic carries other tests' events too: this test's own owner selects ours.
    owner = f"e2e-{uuid.uuid4().hex[:8]}"
    admin = auth("admin")
    with TestClient(opportunities) as ops, TestClient(projections) as reports:
        ids = []
        for _ in range(5):
            created = ops.post(
                "/opportunities",
                json={
                    "type": "new",
                    "customer": customer(),
                    "owner_id": owner,
                    "team_id": "east",
                    "amount": "1000.00",
                },
                headers=admin,
            )
            assert created.status_code == 201, created.text
            ids.append(created.json()["id"])
        for oid in ids[:2]:
            answer = ops.post(
                f"/opportunities/{oid}/advance", json={"to_stage": "requirements"}, headers=admin
            )
            assert answer.status_code == 200, answer.text
        for stage in ("proposal", "negotiation", "signing"):
            answer = ops.post(
                f"/opportunities/{ids[0]}/advance", json={"to_stage": stage}, headers=admin
            )
            assert answer.status_code == 200, answer.text
        won = ops.post(
            f"/opportunities/{ids[0]}/win",
            json={"amount": "1200.00", "contract_ref": "C-1"},
            headers=admin,
        )
        assert won.status_code == 200, won.text

        def funnel() -> tuple[list[int], int]:
            report = reports.get(
                "/funnel", params={"owner_id": owner}, headers=auth("viewer")
            ).json()
            new = next(p for p in report["pipelines"] if p["pipeline_id"] == "new")
            return [s["reached"] for s in new["stages"]], new["won"]

        assert poll(funnel, lambda f: f == ([5, 2, 1, 1, 1], 1), deadline=90) == (
            [5, 2, 1, 1, 1],
            1,
        )
        rates = reports.get("/funnel", params={"owner_id": owner}, headers=auth("viewer")).json()
        first = rates["pipelines"][0]["stages"][0]
        assert first["conversion_rate"] == pytest.approx(0.4)
        assert first["open_amount"] == "3000.00"
