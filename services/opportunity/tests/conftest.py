"""Fixtures of the opportunity service's tests: stores (SQLite and real PostgreSQL), the API
in-process, behind a TestClient or an async client."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from contracts.rules import load_rulebook
from opportunity.main import build_app
from opportunity.settings import Settings
from tests.support.postgres import fresh_database
from tests.support.principals import PRINCIPALS


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_database("oppstream_opportunity") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test runs on a fresh SQLite file and on the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/eventstore.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def client(store_url: str) -> Iterator[TestClient]:
    service = build_app(
        Settings(eventstore_url=store_url), rules=load_rulebook(), principals=PRINCIPALS
    )
    with TestClient(service) as test_client:
        yield test_client


@pytest.fixture
async def api(store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service on this test's event loop, its lifespan included, behind an async client.
    The app starts and stops on that loop too: the group committer starts its writer tasks
    on the loop of the first command, and a TestClient would stop them from its own."""
    service = build_app(
        Settings(eventstore_url=store_url), rules=load_rulebook(), principals=PRINCIPALS
    )
    async with service.router.lifespan_context(service):
        transport = httpx.ASGITransport(app=service)
        async with httpx.AsyncClient(transport=transport, base_url="http://oppstream") as http:
            yield http
