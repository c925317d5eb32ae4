"""What an opportunity service holds, read over HTTP as an admin: an opportunity's state and
its history. `client` is an httpx client of the service (a TestClient is one too)."""

from typing import Any

import httpx

from tests.support.principals import auth


def state_of(client: httpx.Client, oid: str) -> dict[str, Any]:
    answer = client.get(f"/opportunities/{oid}", headers=auth("admin"))
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def history(client: httpx.Client, oid: str) -> list[dict[str, Any]]:
    answer = client.get(f"/opportunities/{oid}/history", headers=auth("admin"))
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events
