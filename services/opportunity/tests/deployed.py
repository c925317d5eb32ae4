"""The opportunity service as deployed, for the tests that run it as a process: a fresh event
store (SQLite or PostgreSQL), the environment that joins it to the test broker, and a running
`oppstream serve opportunity` with an HTTP client of it; an opportunity won over that client."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.opportunity.tests.api_calls import TO_SIGNING
from tests.support.kafka import TestBroker
from tests.support.postgres import fresh_database
from tests.support.principals import auth, customer
from tests.support.processes import Service, running_service, service_env

# The stores a test runs on: params of its store fixture.
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# The shortest session the settings allow: the broker holds a first group join about half
# of it, and a killed copy's membership lapses after it, so every start is quicker.
KAFKA_SETTINGS = {
    "topic_partitions": "6",
    "kafka_session_timeout_ms": "3000",
    "kafka_fetch_max_wait_ms": "10",
}


@contextmanager
def new_event_store(kind: str, workdir: Path, database: str) -> Iterator[str]:
    """The URL of a store nobody else uses: with `kind` "sqlite" a file under `workdir`, else
    a new PostgreSQL database (its name starting with `database`), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir}/store/eventstore.db"
        return
    with fresh_database(database) as url:
        yield url


def kafka_env(workdir: Path, kafka: TestBroker, store_url: str, **settings: str) -> dict[str, str]:
    """The service's environment: the store at `store_url`, the test broker, `settings`."""
    return service_env(
        workdir,
        eventstore_url=store_url,
        kafka_bootstrap=kafka.bootstrap,
        **{**KAFKA_SETTINGS, **settings},
    )


@dataclass
class Deployed:
    """A running service, an HTTP client of it, its store and the broker it is joined to."""

    service: Service
    client: httpx.Client
    store_url: str
    bootstrap: str


@contextmanager
def deployed(
    kind: str, kafka: TestBroker, workdir: Path, database: str, **client: Any
) -> Iterator[Deployed]:
    """`oppstream serve opportunity` on a new event store (see `new_event_store`) and the test
    broker, with an httpx client of it (`client`: the client's options); all stopped, and
    the store dropped, however the block ends."""
    with ExitStack() as stack:
        url = stack.enter_context(new_event_store(kind, workdir, database))
        env = kafka_env(workdir, kafka, url)
        service = stack.enter_context(running_service("opportunity", env, workdir))
        http = stack.enter_context(httpx.Client(base_url=service.url, **client))
        yield Deployed(service, http, url, kafka.bootstrap)


def won_opportunity(
    client: httpx.Client,
    buyer: dict[str, str] | None = None,
    starts_on: date | None = None,
    ends_on: date | None = None,
) -> dict[str, Any]:
    """A `new` opportunity of rep-1 for `buyer` (else a new SMB customer), advanced and won
    over HTTP with a contract from `starts_on` (today) to `ends_on` (60 days after the start);
    its state."""
    rep = auth("rep-1")
    body = {"type": "new", "customer": buyer or customer(tier="SMB")}
    answer = client.post("/opportunities", json=body, headers=rep)
    assert answer.status_code == 201, answer.text
    oid = answer.json()["id"]
    for stage in TO_SIGNING:
        moved = client.post(f"/opportunities/{oid}/advance", json={"to_stage": stage}, headers=rep)
        assert moved.status_code == 200, moved.text
    start = starts_on or datetime.now(UTC).date()
    won = client.post(
        f"/opportunities/{oid}/win",
        json={
            "amount": "64000.00",
            "contract_ref": f"HT-{oid[:8]}",
            "contract_start_on": str(start),
            "contract_end_on": str(ends_on or start + timedelta(days=60)),
        },
        headers=rep,
    )
    assert won.status_code == 200, won.text
    state: dict[str, Any] = won.json()
    return state
