"""Concurrent requests: one winner per (uscc, type) and per stage move, no 5xx, group commit.

Requests go through httpx's ASGI transport on the test's own event loop, so they really
overlap inside the service. The app is started and stopped on that loop too: the group
committer starts its writer tasks on the loop of the first command, and the TestClient
would stop the app from its own loop after this one is closed.
"""

import asyncio
from collections import Counter
from typing import Any
from uuid import uuid4

import httpx

from tests.support.principals import auth, customer

PARALLEL = 8


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    answer = await api.post(
        "/opportunities",
        json={"type": "new", "customer": customer(), **fields},
        headers=auth("rep-1"),
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def version_of(api: httpx.AsyncClient, oid: str) -> int:
    answer = await api.get(f"/opportunities/{oid}", headers=auth("admin"))
    return int(answer.json()["version"])


async def history(api: httpx.AsyncClient, oid: str) -> list[dict[str, Any]]:
    answer = await api.get(f"/opportunities/{oid}/history", headers=auth("admin"))
    return list(answer.json()["events"])


async def test_parallel_creates_of_one_customer_and_type_make_exactly_one(
    api: httpx.AsyncClient,
) -> None:
    sent = customer()

    answers = await asyncio.gather(
        *(
            api.post("/opportunities", json={"type": "new", "customer": sent}, headers=auth(rep))
            for rep in ["rep-1", "rep-2"] * (PARALLEL // 2)
        )
    )

    codes = Counter(a.status_code for a in answers)
    assert codes == {201: 1, 409: PARALLEL - 1}, [a.text for a in answers]
    (winner,) = [a.json()["id"] for a in answers if a.status_code == 201]
    assert {
        a.json()["detail"]["existing_opportunity_id"] for a in answers if a.status_code == 409
    } == {winner}
    listed = await api.get("/opportunities", params={"uscc": sent["uscc"]}, headers=auth("admin"))
    assert [item["id"] for item in listed.json()["items"]] == [winner]


async def test_parallel_advances_to_the_same_stage_move_it_once(api: httpx.AsyncClient) -> None:
    oid = (await create(api))["id"]

    answers = await asyncio.gather(
        *(
            api.post(
                f"/opportunities/{oid}/advance",
                json={"to_stage": "requirements"},
                headers=auth("rep-1"),
            )
            for _ in range(PARALLEL)
        )
    )

    codes = [a.status_code for a in answers]
    assert codes.count(200) == 1, [a.text for a in answers]
    assert set(codes) <= {200, 409, 412}
    (moved,) = [a.json() for a in answers if a.status_code == 200]
    assert (moved["stage"], moved["version"]) == ("requirements", 2)
    assert [e["event_type"] for e in await history(api, oid)] == [
        "OpportunityCreated",
        "StageAdvanced",
    ]


async def test_parallel_commands_with_the_same_if_match_let_one_through(
    api: httpx.AsyncClient,
) -> None:
    oid = (await create(api))["id"]
    headers = {**auth("rep-1"), "If-Match": '"1"'}

    answers = await asyncio.gather(
        *(
            api.post(
                f"/opportunities/{oid}/follow-ups",
                json={"kind": "call", "note": f"call {n}"},
                headers=headers,
            )
            for n in range(PARALLEL)
        )
    )

    codes = [a.status_code for a in answers]
    assert codes.count(200) == 1, [a.text for a in answers]
    assert set(codes) <= {200, 409, 412}
    assert 412 in codes
    assert await version_of(api, oid) == 2
    assert len(await history(api, oid)) == 2


async def test_parallel_different_commands_on_one_opportunity_all_apply_in_some_order(
    api: httpx.AsyncClient,
) -> None:
    oid = (await create(api))["id"]

    answers = await asyncio.gather(
        *(
            api.post(
                f"/opportunities/{oid}/follow-ups",
                json={"kind": "call", "note": f"call {n}"},
                headers=auth("rep-1"),
            )
            for n in range(PARALLEL)
        )
    )

    assert [a.status_code for a in answers] == [200] * PARALLEL, [a.text for a in answers]
    assert sorted(a.json()["version"] for a in answers) == list(range(2, PARALLEL + 2))
    events = await history(api, oid)
    assert [e["version"] for e in events] == list(range(1, PARALLEL + 2))
    assert sorted(e["payload"]["note"] for e in events[1:]) == sorted(
        f"call {n}" for n in range(PARALLEL)
    )


async def test_fifty_parallel_creates_are_all_recorded_in_shared_transactions(
    api: httpx.AsyncClient,
) -> None:
    team = f"team-{uuid4().hex[:8]}"
    count = 50

    answers = await asyncio.gather(
        *(
            api.post(
                "/opportunities",
                json={"type": "new", "customer": customer(), "owner_id": "rep-1", "team_id": team},
                headers=auth("admin"),
            )
            for _ in range(count)
        )
    )

    assert [a.status_code for a in answers] == [201] * count, [
        a.text for a in answers if a.status_code != 201
    ]
    listed = await api.get(
        "/opportunities", params={"team_id": team, "limit": 100}, headers=auth("admin")
    )
    assert listed.json()["total"] == count
    assert {item["id"] for item in listed.json()["items"]} == {a.json()["id"] for a in answers}
    metrics = (await api.get("/metrics")).text
    batches = _sample(metrics, "oppstream_group_commit_batch_size_count")
    assert batches < count  # at least two creates went into one transaction


def _sample(metrics: str, name: str) -> float:
    (line,) = [line for line in metrics.splitlines() if line.startswith(name + " ")]
    return float(line.split()[-1])
