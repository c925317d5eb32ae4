"""The services built in-process, and every opportunity command with a valid body and the steps
that bring an opportunity to where the command succeeds."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

import opportunity.main
import opportunity.settings
import projections.main
import projections.settings
import reminders.main
import reminders.settings
from contracts.customer_rules import Pool
from contracts.rules import load_rulebook
from tests.support.polling import poll
from tests.support.principals import PRINCIPALS, auth, customer

READY_TIMEOUT = 20.0


# Each service: how it is built, and its settings with the store at a URL.
BUILDERS: dict[str, tuple[Callable[..., FastAPI], Callable[[str], Any]]] = {
    "opportunity": (
        opportunity.main.build_app,
        lambda url: opportunity.settings.Settings(eventstore_url=url),
    ),
    "projections": (
        projections.main.build_app,
        lambda url: projections.settings.Settings(projections_db_url=url),
    ),
    "reminders": (
        reminders.main.build_app,
        lambda url: reminders.settings.Settings(reminders_db_url=url),
    ),
}


# The shipped rules without pool rules: these checks are about who may do what, and one
# module's store soon holds more than 50 KA opportunities of rep-1, who would also have to
# wait 30 days to claim back one reclaimed from it (SPEC §8.3 is tested on its own).
RULES = load_rulebook().model_copy(update={"pool": Pool(rules=())})


def service_app(service: str, url: str) -> FastAPI:
    """The service built in-process on the store at `url`, with the test principals."""
    build, settings = BUILDERS[service]
    return build(settings(url), rules=RULES, principals=PRINCIPALS)


def wait_ready(client: TestClient) -> None:
    """Until GET /readyz answers 200 (the reminders service migrates in the background)."""
    poll(lambda: client.get("/readyz").status_code, lambda code: code == 200, READY_TIMEOUT)


Step = tuple[str, dict[str, Any]]

REVISIT_ON = str(datetime.now(UTC).date() + timedelta(days=30))
TO_SIGNING: list[Step] = [
    ("advance", {"to_stage": stage})
    for stage in ("requirements", "proposal", "negotiation", "signing")
]
TO_POOL: Step = ("reclaim", {"reason": "r"})

# Command → (a valid body, the steps that bring a new opportunity to where it succeeds).
COMMANDS: dict[str, tuple[dict[str, Any], list[Step]]] = {
    "advance": ({"to_stage": "requirements"}, []),
    "revert": ({"to_stage": "initial_contact", "reason": "r"}, [TO_SIGNING[0]]),
    "follow-ups": ({"kind": "call", "note": "n"}, []),
    "pause": ({"reason": "r"}, []),
    "resume": ({}, [("pause", {"reason": "r"})]),
    "defer": ({"reason": "tender_cycle", "revisit_on": REVISIT_ON}, []),
    "reactivate": ({}, [("defer", {"reason": "tender_cycle", "revisit_on": REVISIT_ON})]),
    "reclaim": ({"reason": "r"}, []),
    "assign": ({"owner_id": "rep-2"}, []),
    "claim": ({}, [TO_POOL]),
    "win": ({"amount": "1", "contract_ref": "C"}, TO_SIGNING),
    "lose": ({"reason": "price"}, []),
    "void": ({"reason": "r"}, []),
    "update": ({"title": "t"}, []),
    "key-persons": ({"name": "n"}, []),
    "competitors": ({"name": "n"}, []),
    "documents": ({"name": "n", "url": "https://files.example/x"}, []),
}


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    """A new opportunity of rep-1 in team east, created by an admin; its state."""
    body = {"type": "new", "customer": customer(), "owner_id": "rep-1", "team_id": "east"}
    answer = client.post("/opportunities", json=body | fields, headers=auth("admin"))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def send(
    client: TestClient, oid: str, command: str, body: dict[str, Any], principal: str
) -> Response:
    if command == "update":
        return client.patch(f"/opportunities/{oid}", json=body, headers=auth(principal))
    return client.post(f"/opportunities/{oid}/{command}", json=body, headers=auth(principal))


def prepared(client: TestClient, steps: list[Step]) -> dict[str, Any]:
    """A new opportunity after `steps` (given by an admin); its state."""
    state = create(client)
    for command, body in steps:
        answer = send(client, state["id"], command, body, "admin")
        assert answer.status_code == 200, answer.text
        state = answer.json()
    return state


def version_of(client: TestClient, oid: str) -> int:
    return int(client.get(f"/opportunities/{oid}", headers=auth("admin")).json()["version"])
