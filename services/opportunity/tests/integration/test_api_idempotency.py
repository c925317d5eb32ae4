"""Idempotency-Key: a repeated key answers the first answer and records nothing more."""

import asyncio
from uuid import uuid4

import httpx
from fastapi.testclient import TestClient

from services.opportunity.tests.api_calls import create, total_for
from tests.support.principals import auth, customer

PARALLEL = 8


def keyed(principal: str, key: str) -> dict[str, str]:
    return {**auth(principal), "Idempotency-Key": key}


def followed_up_under(client: TestClient, key: str) -> str:
    """A new opportunity of rep-1 given a follow-up under Idempotency-Key `key`; its id."""
    oid = create(client)["id"]
    client.post(
        f"/opportunities/{oid}/follow-ups",
        json={"kind": "call", "note": "a"},
        headers=keyed("rep-1", key),
    )
    return str(oid)


def history_length(client: TestClient, oid: str) -> int:
    return len(client.get(f"/opportunities/{oid}/history", headers=auth("admin")).json()["events"])


def test_a_repeated_create_answers_the_first_answer_and_creates_once(client: TestClient) -> None:
    body = {"type": "new", "customer": customer()}
    key = str(uuid4())

    first = client.post("/opportunities", json=body, headers=keyed("rep-1", key))
    again = client.post("/opportunities", json=body, headers=keyed("rep-1", key))

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert total_for(client, body["customer"]["uscc"]) == 1
    assert history_length(client, first.json()["id"]) == 1


def test_a_repeated_command_answers_the_first_answer_and_records_one_event(
    client: TestClient,
) -> None:
    oid = create(client)["id"]
    key = str(uuid4())

    first = client.post(
        f"/opportunities/{oid}/advance",
        json={"to_stage": "requirements"},
        headers=keyed("rep-1", key),
    )
    again = client.post(
        f"/opportunities/{oid}/advance",
        json={"to_stage": "requirements"},
        headers=keyed("rep-1", key),
    )

    assert (first.status_code, again.status_code) == (200, 200), again.text
    assert again.json() == first.json()
    assert again.json()["version"] == 2
    assert history_length(client, oid) == 2


def test_a_repeated_key_answers_the_first_answer_even_after_later_changes(
    client: TestClient,
) -> None:
    oid = create(client)["id"]
    key = str(uuid4())
    body = {"kind": "call", "note": "first call"}
    first = client.post(f"/opportunities/{oid}/follow-ups", json=body, headers=keyed("rep-1", key))
    client.post(
        f"/opportunities/{oid}/advance", json={"to_stage": "requirements"}, headers=auth("rep-1")
    )

    again = client.post(f"/opportunities/{oid}/follow-ups", json=body, headers=keyed("rep-1", key))

    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.json()["version"] == 2
    assert history_length(client, oid) == 3


def test_a_patch_and_a_bodiless_command_are_idempotent_too(client: TestClient) -> None:
    oid = create(client)["id"]
    patch_key, pause_key, resume_key = str(uuid4()), str(uuid4()), str(uuid4())

    patches = [
        client.patch(
            f"/opportunities/{oid}", json={"title": "t"}, headers=keyed("rep-1", patch_key)
        )
        for _ in range(2)
    ]
    client.post(
        f"/opportunities/{oid}/pause", json={"reason": "r"}, headers=keyed("rep-1", pause_key)
    )
    resumes = [
        client.post(f"/opportunities/{oid}/resume", headers=keyed("rep-1", resume_key))
        for _ in range(2)
    ]

    assert [p.status_code for p in patches] == [200, 200]
    assert patches[0].json() == patches[1].json()
    assert [r.status_code for r in resumes] == [200, 200], resumes[1].text
    assert resumes[0].json() == resumes[1].json()
    assert history_length(client, oid) == 4


def test_the_same_key_with_another_body_is_refused_naming_the_key(client: TestClient) -> None:
    key = str(uuid4())
    oid = followed_up_under(client, key)

    answer = client.post(
        f"/opportunities/{oid}/follow-ups",
        json={"kind": "call", "note": "b"},
        headers=keyed("rep-1", key),
    )

    assert answer.status_code == 422, answer.text
    assert "Idempotency-Key" in answer.json()["detail"][0]["loc"]
    assert history_length(client, oid) == 2


def test_the_same_key_on_another_endpoint_is_refused_naming_the_key(client: TestClient) -> None:
    key = str(uuid4())
    oid = followed_up_under(client, key)

    answer = client.post(
        f"/opportunities/{oid}/pause", json={"reason": "a"}, headers=keyed("rep-1", key)
    )

    assert answer.status_code == 422, answer.text
    assert "Idempotency-Key" in answer.json()["detail"][0]["loc"]
    assert client.get(f"/opportunities/{oid}", headers=auth("rep-1")).json()["status"] == "open"


def test_keys_belong_to_their_principal(client: TestClient) -> None:
    key = str(uuid4())
    first = client.post(
        "/opportunities", json={"type": "new", "customer": customer()}, headers=keyed("rep-1", key)
    )

    other = client.post(
        "/opportunities", json={"type": "new", "customer": customer()}, headers=keyed("rep-3", key)
    )

    assert (first.status_code, other.status_code) == (201, 201), other.text
    assert other.json()["id"] != first.json()["id"]
    assert other.json()["owner_id"] == "rep-3"


def test_a_refused_command_is_not_remembered_under_its_key(client: TestClient) -> None:
    oid = create(client)["id"]
    key = str(uuid4())

    refused = client.post(f"/opportunities/{oid}/resume", json={}, headers=keyed("rep-1", key))
    client.post(f"/opportunities/{oid}/pause", json={"reason": "r"}, headers=auth("rep-1"))
    retried = client.post(f"/opportunities/{oid}/resume", json={}, headers=keyed("rep-1", key))

    assert refused.status_code == 409
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "open"


# -- concurrent repeats ------------------------------------------------------------------------


async def test_parallel_commands_with_one_key_record_one_event_and_answer_alike(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post(
        "/opportunities", json={"type": "new", "customer": customer()}, headers=auth("rep-1")
    )
    oid = created.json()["id"]
    headers = keyed("rep-1", str(uuid4()))

    answers = await asyncio.gather(
        *(
            api.post(
                f"/opportunities/{oid}/advance", json={"to_stage": "requirements"}, headers=headers
            )
            for _ in range(PARALLEL)
        )
    )

    assert [a.status_code for a in answers] == [200] * PARALLEL, [a.text for a in answers]
    assert all(a.json() == answers[0].json() for a in answers)
    events = (await api.get(f"/opportunities/{oid}/history", headers=auth("admin"))).json()[
        "events"
    ]
    assert [e["event_type"] for e in events] == ["OpportunityCreated", "StageAdvanced"]


async def test_parallel_creates_with_one_key_create_once_and_answer_alike(
    api: httpx.AsyncClient,
) -> None:
    body = {"type": "new", "customer": customer()}
    headers = keyed("rep-1", str(uuid4()))

    answers = await asyncio.gather(
        *(api.post("/opportunities", json=body, headers=headers) for _ in range(PARALLEL))
    )

    assert [a.status_code for a in answers] == [201] * PARALLEL, [a.text for a in answers]
    assert all(a.json() == answers[0].json() for a in answers)
    listed = await api.get(
        "/opportunities", params={"uscc": body["customer"]["uscc"]}, headers=auth("admin")
    )
    assert listed.json()["total"] == 1
