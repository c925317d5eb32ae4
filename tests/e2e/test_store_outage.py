"""PostgreSQL stopped under the three running services and started again (SPEC §7, "a store
that goes away"): while it is away each /readyz answers 503 within a second naming the store,
a command and the queries answer 503 with the JSON error body and Retry-After; once it is
back everything recovers without a restart, and nothing answered 2xx before is lost."""

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from tests.support import kafka
from tests.support.polling import poll, wait_until
from tests.support.principals import auth, customer
from tests.support.processes import Service, running_service, service_env
from tests.support.throwaway_postgres import Cluster, postgres_bin, throwaway_cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STORES = {
    "opportunity": ("eventstore_url", "event store"),
    "projections": ("projections_db_url", "projections database"),
    "reminders": ("reminders_db_url", "reminders database"),
}
KAFKA_SETTINGS = {
    "topic_partitions": "6",
    "kafka_session_timeout_ms": "6000",
    "kafka_fetch_max_wait_ms": "10",
}
# SPEC §7: /readyz answers within a second; a command within a few seconds (a pool wait).
READYZ_SECONDS = 1.0
COMMAND_SECONDS = 10.0
RECOVERY_SECONDS = 60.0
ANSWERED_BEFORE = 3


@dataclass
class System:
    cluster: Cluster
    services: dict[str, Service]
    clients: dict[str, httpx.Client]
    urls: dict[str, str]


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """The three services on a PostgreSQL cluster of this test's own (the shared server is
    never stopped) and a broker of its own (the session's holds every other test's events,
    which the consumers would read first), each with an HTTP client that gives up long
    before a hang would end the test."""
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL server binaries to run a cluster of the test's own")
    with ExitStack() as stack:
        broker = stack.enter_context(kafka.test_broker())
        cluster = stack.enter_context(throwaway_cluster())
        urls = {name: cluster.create_database(name) for name in STORES}
        services, clients = {}, {}
        for name, (setting, _) in STORES.items():
            workdir = tmp_path / name
            env = service_env(
                workdir,
                kafka_bootstrap=broker.bootstrap,
                **{setting: urls[name]},
                **KAFKA_SETTINGS,
            )
            services[name] = stack.enter_context(
                running_service(name, env, workdir, ready_timeout=RECOVERY_SECONDS)
            )
            clients[name] = stack.enter_context(
                httpx.Client(base_url=services[name].url, timeout=3 * COMMAND_SECONDS)
            )
        yield System(cluster, services, clients, urls)


def create(
    client: httpx.Client, team: str, key: str | None = None, body: dict[str, Any] | None = None
) -> httpx.Response:
    """POST /opportunities of a new customer in `team`, or of `body` (a request sent again)."""
    headers = {**auth("admin"), **({"Idempotency-Key": key} if key else {})}
    body = body or {"type": "new", "customer": customer(), "owner_id": "rep-1", "team_id": team}
    return client.post("/opportunities", json=body, headers=headers)


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def assert_store_unavailable(answer: httpx.Response, store: str) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["Retry-After"]) > 0
    detail = answer.json()["detail"]
    assert detail["error"] == "store_unavailable"
    assert detail["store"] == store
    assert detail["message"]


def projected(system: System, ids: list[str]) -> int:
    """How many of the opportunities the projections database holds (asked directly)."""
    with psycopg.connect(system.urls["projections"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM bi_opportunity WHERE id = ANY(%s)", (ids,)
        ).fetchone()
    return int(row[0]) if row else 0


def reminded(system: System, ids: list[str]) -> bool:
    """Whether the reminders service has the facts of every one of the opportunities."""
    client = system.clients["reminders"]
    return all(
        client.get(f"/opportunities/{oid}/reminders", headers=auth("admin")).status_code == 200
        for oid in ids
    )


def test_a_store_that_goes_away_is_survived_without_a_restart(system: System) -> None:
    opportunity = system.clients["opportunity"]
    team = f"outage-{uuid.uuid4().hex[:8]}"
    answered: dict[str, int] = {}
    for _ in range(ANSWERED_BEFORE):
        created = create(opportunity, team)
        assert created.status_code == 201, created.text
        answered[created.json()["id"]] = created.json()["version"]
    before = list(answered)
    wait_until(lambda: projected(system, before) == len(before), RECOVERY_SECONDS, "projected")
    wait_until(lambda: reminded(system, before), RECOVERY_SECONDS, "reminders took them")

    system.cluster.stop()

    for name, (_, store) in STORES.items():
        ready, seconds = timed(lambda name=name: system.clients[name].get("/readyz"))
        assert ready.status_code == 503, f"{name}: {ready.text}"
        assert seconds < READYZ_SECONDS, f"{name} /readyz took {seconds:.2f} s"
        assert store in ready.json()["down"], f"{name}: {ready.text}"
    key = f"outage-{uuid.uuid4().hex}"
    refused, seconds = timed(lambda: create(opportunity, team, key))
    request = orjson.loads(refused.request.content)
    assert_store_unavailable(refused, "event store")
    assert seconds < COMMAND_SECONDS, f"the create took {seconds:.2f} s"
    some = before[0]
    moved = opportunity.post(
        f"/opportunities/{some}/advance", json={"to_stage": "requirements"}, headers=auth("admin")
    )
    assert_store_unavailable(moved, "event store")
    assert_store_unavailable(
        opportunity.get(f"/opportunities/{some}", headers=auth("admin")), "event store"
    )
    assert_store_unavailable(
        system.clients["projections"].get("/funnel", headers=auth("admin")),
        "projections database",
    )
    assert_store_unavailable(
        system.clients["reminders"].get(f"/opportunities/{some}/reminders", headers=auth("admin")),
        "reminders database",
    )

    system.cluster.start()

    for name in STORES:
        client = system.clients[name]
        wait_until(
            lambda client=client: client.get("/readyz").status_code == 200,
            RECOVERY_SECONDS,
            f"{name} ready again",
        )
    # The client sends the refused command again, under the same key, until it is taken.
    again = poll(
        lambda: create(opportunity, team, key, request), lambda answer: answer.status_code == 201
    )
    after = again.json()["id"]
    replayed = create(opportunity, team, key, request)
    assert replayed.headers.get("Idempotent-Replayed") == "true", replayed.text
    assert replayed.json()["id"] == after
    for oid, version in answered.items():
        kept = opportunity.get(f"/opportunities/{oid}", headers=auth("admin"))
        assert kept.status_code == 200, kept.text
        assert kept.json()["version"] == version
    everything = [*before, after]
    wait_until(
        lambda: projected(system, everything) == len(everything),
        RECOVERY_SECONDS,
        "the projections consumer went on",
    )
    wait_until(
        lambda: reminded(system, everything), RECOVERY_SECONDS, "the reminders consumer went on"
    )
    for name, service in system.services.items():
        assert service.process.poll() is None, f"{name} exited\n{service.output()}"
