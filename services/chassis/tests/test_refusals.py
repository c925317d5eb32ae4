"""What every service refuses the same way (SPEC §11): a body over the bound answers 413 before
anything reads it, whether it says its length or comes in chunks; a 422 names the field and
the rule but never repeats what was sent."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, field_validator

from chassis.http import new_service

LIMIT = 1000
SECRET = "SECRET-" + "x" * 5000


@asynccontextmanager
async def nothing(_: FastAPI) -> AsyncIterator[None]:
    yield


class Note(BaseModel):
    title: str = Field(max_length=200)
    reason: str = "ok"

    @field_validator("reason")
    @classmethod
    def _known(cls, reason: str) -> str:
        if reason != "ok":
            raise ValueError("the reason is none of the known ones; use 'ok'")
        return reason


def client() -> tuple[TestClient, list[bytes]]:
    """A service with a body limit of LIMIT bytes, and what its routes read."""
    service = new_service("test", "refusals", nothing, store="test store", max_body_bytes=LIMIT)
    read: list[bytes] = []

    @service.post("/notes")
    async def note(body: Note) -> dict[str, str]:
        return {"title": body.title}

    @service.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        read.append(await request.body())
        return {"read": len(read[-1])}

    return TestClient(service), read


def test_a_body_over_the_limit_answers_413_unread() -> None:
    test_client, read = client()
    answer = test_client.post("/raw", content=b"x" * (LIMIT + 1))
    assert answer.status_code == 413
    assert answer.json() == {
        "detail": {
            "error": "too_large",
            "message": f"the request body is over the limit of {LIMIT} bytes",
            "limit": LIMIT,
        }
    }
    assert read == []
    assert test_client.post("/raw", content=b"x" * LIMIT).json() == {"read": LIMIT}


def test_a_body_sent_in_chunks_is_refused_once_over_the_limit() -> None:
    test_client, read = client()

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"x" * 300

    answer = test_client.post("/raw", content=chunks())
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413
    assert answer.json()["detail"]["limit"] == LIMIT
    assert read == []
    parsed = test_client.post(
        "/notes", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert parsed.status_code == 413


def test_a_422_names_field_and_limit_without_the_value_sent() -> None:
    test_client, _ = client()
    answer = test_client.post("/notes", json={"title": SECRET[:900], "reason": "tender SECRET"})
    assert answer.status_code == 422
    assert b"SECRET" not in answer.content
    problems = answer.json()["detail"]
    assert problems[0] == {
        "loc": ["body", "title"],
        "msg": "String should have at most 200 characters",
        "type": "string_too_long",
        "ctx": {"max_length": 200},
    }
    assert [p["loc"] for p in problems] == [["body", "title"], ["body", "reason"]]
    assert all(set(p) <= {"loc", "msg", "type", "ctx"} for p in problems)


def test_a_body_that_is_no_json_is_refused_without_repeating_it() -> None:
    test_client, _ = client()
    answer = test_client.post(
        "/notes", content=b'{"title": "SECRET', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert b"SECRET" not in answer.content
