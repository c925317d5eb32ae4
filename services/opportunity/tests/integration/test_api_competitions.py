"""Competitions over HTTP (SPEC §9.2): defined by a manager for the own team or an admin for
any, the same definition again accepted and another refused, every refusal naming the field or
the rule with nothing recorded, the list and one competition, the event on the feed."""

from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from contracts.competitions import COMPETITION_PAYLOADS, competition_record_id
from contracts.envelope import Envelope
from tests.support.principals import auth


def competition(**changed: object) -> dict[str, Any]:
    return {
        "id": f"q4-{uuid4().hex[:8]}",
        "name": "Q4 sprint",
        "metric": "won_amount",
        "from": "2026-10-01",
        "to": "2027-01-01T00:00:00+08:00",
        **changed,
    }


def define(client: TestClient, body: dict[str, Any], principal: str = "admin") -> Any:
    return client.post("/competitions", json=body, headers=auth(principal))


def recorded(client: TestClient) -> int:
    return int(client.app.state.api.app.last_position())  # type: ignore[attr-defined]


def test_an_admin_defines_a_competition_for_the_teams_named(client: TestClient) -> None:
    sent = competition(team_ids=["west", "east"], tiers=["KA"], types=["new", "resale"])
    answer = define(client, sent)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {
        "id": sent["id"],
        "name": "Q4 sprint",
        "metric": "won_amount",
        "from": "2026-10-01T00:00:00+08:00",
        "to": "2027-01-01T00:00:00+08:00",
        "team_ids": ["east", "west"],
        "tiers": ["KA"],
        "types": ["new", "resale"],
        "defined_by": "admin",
        "defined_at": answer.json()["defined_at"],
        "version": 1,
    }
    one = client.get(f"/competitions/{sent['id']}", headers=auth("rep-3"))
    assert one.status_code == 200
    assert one.json() == answer.json()
    listed = client.get("/competitions", headers=auth("viewer")).json()["competitions"]
    assert answer.json() in listed


def test_a_managers_competition_is_for_the_own_team(client: TestClient) -> None:
    answer = define(client, competition(metric="follow_ups"), "manager-west")
    assert answer.status_code == 201, answer.text
    assert answer.json()["team_ids"] == ["west"]


def test_the_same_definition_again_records_nothing_and_another_is_refused(
    client: TestClient,
) -> None:
    sent = competition(team_ids=["east"], to="2026-12-31T16:00:00Z")
    first = define(client, sent, "manager-east")
    assert first.status_code == 201, first.text
    before = recorded(client)
    # The same instant written otherwise, the own team left out: the same definition.
    again = define(client, {**sent, "to": "2027-01-01", "team_ids": []}, "manager-east")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    other = define(client, {**sent, "name": "Q4 marathon"}, "manager-east")
    assert other.status_code == 409, other.text
    assert other.json()["detail"]["error"] == "defined_otherwise"
    assert recorded(client) == before


def test_a_definition_is_an_event_on_the_feed(client: TestClient) -> None:
    start = recorded(client)
    sent = competition(metric="advances")
    assert define(client, sent).status_code == 201
    items = client.get("/notifications", params={"after": start}, headers=auth("service")).json()[
        "items"
    ]
    [envelope] = [Envelope.model_validate(i["envelope"]) for i in items]
    assert envelope.event_type == "CompetitionDefined"
    assert envelope.opportunity_id == competition_record_id(sent["id"])
    defined = COMPETITION_PAYLOADS["CompetitionDefined"].model_validate(envelope.payload)
    assert (defined.competition_id, defined.metric, defined.team_ids) == (
        sent["id"],
        "advances",
        (),
    )
    assert envelope.payload["from"] == "2026-10-01T00:00:00+08:00"


REFUSED = [
    # (body changes, principal, status, field or rule)
    ({"to": "2026-10-01"}, "admin", 422, "to"),
    ({"to": "2026-09-30T23:00:00+08:00"}, "admin", 422, "to"),
    ({"to": "next week"}, "admin", 422, "to"),
    ({"from": "2026-10-01T00:00:00"}, "admin", 422, "from"),
    ({"metric": "revenue"}, "admin", 422, "metric"),
    ({"tiers": ["XL"]}, "admin", 422, "tiers"),
    ({"types": ["upsell"]}, "admin", 422, "types"),
    ({"team_ids": ["north"]}, "admin", 422, "team_ids"),
    ({"id": "no spaces"}, "admin", 422, "id"),
    ({"team_ids": ["west"]}, "manager-east", 403, "role.team"),
    ({"team_ids": ["east", "west"]}, "manager-east", 403, "role.team"),
    ({}, "rep-1", 403, "role.competitions"),
    ({}, "viewer", 403, "role.competitions"),
    ({}, "service", 403, "role.competitions"),
]


def test_every_refusal_names_the_field_or_rule_and_records_nothing(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    for changes, principal, status, name in REFUSED:
        with subtests.test(changes=changes, principal=principal):
            before = recorded(client)
            sent = competition(**changes)
            answer = define(client, sent, principal)
            assert answer.status_code == status, answer.text
            detail = answer.json()["detail"]
            if status == 403:
                assert detail["rule"] == name
            else:
                assert detail[0]["loc"][:2] == ["body", name]
            assert recorded(client) == before
            if "id" not in changes:
                missing = client.get(f"/competitions/{sent['id']}", headers=auth("admin"))
                assert missing.status_code == 404


def test_an_unknown_competition_is_not_found(client: TestClient) -> None:
    answer = client.get("/competitions/never-defined", headers=auth("rep-1"))
    assert answer.status_code == 404
    assert client.get("/competitions", headers={}).status_code == 401
