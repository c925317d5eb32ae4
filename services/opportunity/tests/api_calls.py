"""Calls the API tests make of the opportunity service in-process (a TestClient): creating an
opportunity, giving it commands that must succeed, counting a customer's opportunities."""

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.support.principals import auth, customer

# The stages of the `new` pipeline after the first, in order: advancing through them brings a
# new opportunity to where it can be won.
TO_SIGNING = ("requirements", "proposal", "negotiation", "signing")


def create(client: TestClient, principal: str = "rep-1", **fields: Any) -> dict[str, Any]:
    """A new opportunity (of a new customer unless `fields` name one) created by `principal`;
    its state."""
    payload = {"type": "new", "customer": customer(), **fields}
    answer = client.post("/opportunities", json=payload, headers=auth(principal))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def act(
    client: TestClient,
    opportunity_id: str,
    command: str,
    body: dict[str, Any] | None = None,
    principal: str = "rep-1",
) -> dict[str, Any]:
    """Give a command that must succeed; its answer."""
    answer = client.post(
        f"/opportunities/{opportunity_id}/{command}", json=body, headers=auth(principal)
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def to_signing(client: TestClient, opportunity_id: str) -> None:
    """Advance a new opportunity of rep-1 stage by stage to `signing`."""
    for stage in TO_SIGNING:
        act(client, opportunity_id, "advance", {"to_stage": stage})


def won_contract(client: TestClient, sent: dict[str, Any], *, running: bool) -> str:
    """The customer `sent` wins a contract with rep-1: one that runs another year, or one that
    ended a month ago (the type rules then allow `new`, `renewal` and `resale` alike); the won
    opportunity's id."""
    today = datetime.now(UTC).date()
    ends = today + timedelta(days=365) if running else today - timedelta(days=30)
    won = create(client, customer=sent)["id"]
    to_signing(client, won)
    act(
        client,
        won,
        "win",
        {
            "amount": "1000",
            "contract_ref": "C-1",
            "contract_start_on": str(ends - timedelta(days=365)),
            "contract_end_on": str(ends),
        },
    )
    return won


def total_for(client: TestClient, uscc: str) -> int:
    """How many opportunities the customer `uscc` has, as an admin counts them."""
    answer = client.get("/opportunities", params={"uscc": uscc}, headers=auth("admin"))
    return int(answer.json()["total"])
