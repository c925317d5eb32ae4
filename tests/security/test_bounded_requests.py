"""Hostile requests meet bounds (SPEC §11): a body over OPPSTREAM_MAX_BODY_BYTES is refused with
413 before it is parsed, in every service and over the opportunity service's fast lane too;
an error answer never repeats a value that was sent; `/metrics` carries the process
collectors in each service."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.support.principals import auth, customer

LIMIT = 1_048_576
TWO_MB = b"x" * (2 * LIMIT)
SECRET = "SECRET-" + "x" * 5000
TOO_LARGE = {
    "detail": {
        "error": "too_large",
        "message": f"the request body is over the limit of {LIMIT} bytes",
        "limit": LIMIT,
    }
}


def in_chunks(body: bytes, size: int = 65_536) -> Iterator[bytes]:
    """The body sent without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def opportunities(client: TestClient) -> int:
    listed = client.get("/opportunities", headers=auth("admin"), params={"limit": 500})
    return len(listed.json()["items"])


def a_body_of_two_mb() -> bytes:
    title = "x" * len(TWO_MB)
    return f'{{"type": "new", "title": "{title}", "customer": {{}}}}'.encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_two_mb_command_is_refused_with_413_and_records_nothing(
    opportunity_client: TestClient, chunked: bool
) -> None:
    before = opportunities(opportunity_client)
    body = a_body_of_two_mb()
    started = time.perf_counter()
    answer = opportunity_client.post(
        "/opportunities",
        content=in_chunks(body) if chunked else body,
        headers={**auth("rep-1"), "Content-Type": "application/json"},
    )
    assert time.perf_counter() - started < 0.5
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE
    assert opportunities(opportunity_client) == before


def test_the_other_services_refuse_a_large_body_too(
    projections_client: TestClient, reminders_client: TestClient
) -> None:
    """Their routes read no body: one that says its length is refused unread (a body sent in
    chunks is refused once read over the limit: tests of the chassis)."""
    for client in (projections_client, reminders_client):
        answer = client.request("GET", "/healthz", content=TWO_MB, headers=auth("admin"))
        assert answer.status_code == 413
        assert answer.json() == TOO_LARGE


def test_a_422_never_repeats_what_was_sent(opportunity_client: TestClient) -> None:
    created = opportunity_client.post(
        "/opportunities", json={"type": "new", "customer": customer()}, headers=auth("rep-1")
    )
    oid = created.json()["id"]
    revisit = str(datetime.now(UTC).date() + timedelta(days=30))
    refused = [
        opportunity_client.post(
            "/opportunities",
            json={"type": "new", "title": SECRET, "customer": customer()},
            headers=auth("rep-1"),
        ),
        opportunity_client.post(
            f"/opportunities/{oid}/defer",
            json={"reason": "tender next year SECRET", "revisit_on": revisit},
            headers=auth("rep-1"),
        ),
        opportunity_client.post(
            f"/opportunities/{oid}/lose", json={"reason": "SECRET price"}, headers=auth("rep-1")
        ),
        opportunity_client.post(
            f"/opportunities/{oid}/advance", json={"to_stage": "SECRET"}, headers=auth("rep-1")
        ),
        opportunity_client.post(
            f"/opportunities/{oid}/follow-ups",
            json={"kind": "SECRET", "note": "n"},
            headers=auth("rep-1"),
        ),
        opportunity_client.post(
            "/opportunities",
            json={"type": "new", "customer": {**customer(), "tier": "SECRET"}},
            headers=auth("rep-1"),
        ),
    ]
    for answer in refused:
        assert answer.status_code == 422, answer.text
        assert b"SECRET" not in answer.content, answer.text
        assert all("input" not in problem for problem in answer.json()["detail"])


def test_every_service_exposes_the_process_metrics(
    opportunity_client: TestClient, projections_client: TestClient, reminders_client: TestClient
) -> None:
    for client in (opportunity_client, projections_client, reminders_client):
        text = client.get("/metrics").text
        assert "process_resident_memory_bytes" in text
        assert "python_info" in text
