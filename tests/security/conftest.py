"""Fixtures of the security checks: fresh stores per test module (SQLite files, or new
PostgreSQL databases) and the services on them, shared by the module's tests."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

from tests.security.apps import service_app, wait_ready
from tests.support.postgres import fresh_database

StoreUrl = Callable[[str], str]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StoreUrl]:
    """A fresh store for each service a module asks for: a SQLite file, or a new PostgreSQL
    database (dropped after the module)."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("stores")
        yield lambda service: f"sqlite:///{folder}/{service}.db"
        return
    with ExitStack() as stack:
        made: dict[str, str] = {}

        def url_for(service: str) -> str:
            if service not in made:
                made[service] = stack.enter_context(fresh_database(f"oppstream_security_{service}"))
            return made[service]

        yield url_for


@pytest.fixture(scope="module")
def opportunity_client(store_url: StoreUrl) -> Iterator[TestClient]:
    with TestClient(service_app("opportunity", store_url("opportunity"))) as client:
        yield client


@pytest.fixture(scope="module")
def projections_client(store_url: StoreUrl) -> Iterator[TestClient]:
    with TestClient(service_app("projections", store_url("projections"))) as client:
        yield client


@pytest.fixture(scope="module")
def reminders_client(store_url: StoreUrl) -> Iterator[TestClient]:
    with TestClient(service_app("reminders", store_url("reminders"))) as client:
        wait_ready(client)
        yield client
