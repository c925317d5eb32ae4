"""The services' shared HTTP side when a store goes away: a store that cannot be reached
answers 503 with the JSON error body and Retry-After, any other store failure stays a 500,
and a readiness check never makes /readyz wait longer than its bound."""

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chassis.http import RETRY_AFTER_SECONDS, BoundedCheck, new_service


class LibraryError(Exception):
    """What a persistence library wraps the driver's errors in."""


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


def failing_service() -> TestClient:
    """A service whose routes fail as the store would."""
    service = new_service(
        "test", "fails", nothing, store="test store", store_errors=(LibraryError,)
    )
    refused = psycopg.OperationalError("connection failed: Connection refused")
    failures: dict[str, Exception] = {
        "refused": refused,
        "sqlalchemy": sa.exc.OperationalError("SELECT 1", {}, refused),
        "pool": sa.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
        "wrapped": LibraryError("the library's own words"),
        "constraint": psycopg.errors.UniqueViolation("duplicate key"),
        "locked": sa.exc.OperationalError(
            "BEGIN", {}, sqlite3.OperationalError("database is locked")
        ),
    }

    @service.get("/{failure}")
    async def fail(failure: str) -> None:
        if failure == "wrapped":
            raise failures[failure] from refused
        raise failures[failure]

    return TestClient(service, raise_server_exceptions=False)


@pytest.mark.parametrize("failure", ["refused", "sqlalchemy", "pool", "wrapped"])
def test_a_store_that_cannot_be_reached_answers_503_with_retry_after(failure: str) -> None:
    answer = failing_service().get(f"/{failure}")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert answer.headers["content-type"] == "application/json"
    detail = answer.json()["detail"]
    assert detail["error"] == "store_unavailable"
    assert detail["store"] == "test store"
    assert "test store" in detail["message"]


@pytest.mark.parametrize("failure", ["constraint", "locked"])
def test_any_other_failure_of_the_store_stays_a_500(failure: str) -> None:
    answer = failing_service().get(f"/{failure}")
    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers


async def test_a_check_that_hangs_answers_within_its_bound_and_is_not_started_twice() -> None:
    release, started = threading.Event(), []

    def hangs() -> int:
        started.append(time.monotonic())
        release.wait(10)
        return 7

    check = BoundedCheck(hangs, seconds=0.2)
    try:
        begun = time.monotonic()
        with pytest.raises(TimeoutError, match="no answer within 0.2 s"):
            await check()
        assert time.monotonic() - begun < 1.0
        # The next probe does not wait again for the check still running, nor start another.
        begun = time.monotonic()
        with pytest.raises(TimeoutError):
            await check()
        assert time.monotonic() - begun < 0.1
        assert len(started) == 1
    finally:
        release.set()
    await asyncio.sleep(0.05)
    assert await check() == 7  # the check that came back late answers the next probe


async def test_a_check_that_fails_says_why_and_the_next_probe_checks_again() -> None:
    answers = iter([psycopg.OperationalError("connection failed"), 3])

    def check_once() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    check = BoundedCheck(check_once)
    with pytest.raises(psycopg.OperationalError):
        await check()
    assert await check() == 3
