"""Refusals answer the exact status code, name the field or rule, and record nothing."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from tests.support.principals import auth, customer

TODAY = datetime.now(UTC).date()

# A valid body for every command, so only the rule under test can refuse it.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "advance": {"to_stage": "requirements"},
    "revert": {"to_stage": "initial_contact", "reason": "r"},
    "follow-ups": {"kind": "call", "note": "n"},
    "pause": {"reason": "r"},
    "resume": {},
    "defer": {"reason": "r", "revisit_on": str(TODAY + timedelta(days=30))},
    "reactivate": {},
    "reclaim": {"reason": "r"},
    "assign": {"owner_id": "rep-2"},
    "claim": {},
    "win": {"amount": "1", "contract_ref": "C"},
    "lose": {"reason": "price"},
    "void": {"reason": "r"},
    "key-persons": {"name": "n"},
    "competitors": {"name": "n"},
    "documents": {"name": "n", "url": "https://files.example/x"},
}


def create(client: TestClient, principal: str = "rep-1", **fields: Any) -> dict[str, Any]:
    payload = {"type": "new", "customer": customer(), **fields}
    answer = client.post("/opportunities", json=payload, headers=auth(principal))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def act(
    client: TestClient, oid: str, command: str, body: dict[str, Any] | None = None, principal: str = "rep-1"
) -> dict[str, Any]:
    answer = client.post(f"/opportunities/{oid}/{command}", json=body, headers=auth(principal))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def version_of(client: TestClient, oid: str) -> int:
    return int(client.get(f"/opportunities/{oid}", headers=auth("admin")).json()["version"])


def history_length(client: TestClient, oid: str) -> int:
    return len(client.get(f"/opportunities/{oid}/history", headers=auth("admin")).json()["events"])


def locs(answer: Any) -> list[list[Any]]:
    """The `loc` of every validation problem in a 422 answer."""
    return [problem["loc"] for problem in answer.json()["detail"]]


# -- 401 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-known-token-0000"}, {"Authorization": "Basic cmVwOnB3"}],
    ids=["no-token", "unknown-token", "not-bearer"],
)
def test_a_request_without_a_valid_token_is_refused_with_401(
    client: TestClient, headers: dict[str, str]
) -> None:
    for answer in (
        client.get("/opportunities", headers=headers),
        client.post("/opportunities", json={"type": "new", "customer": customer()}, headers=headers),
        client.get("/pipelines", headers=headers),
    ):
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["detail"]["error"] == "unauthenticated"
        assert "Bearer" in answer.json()["detail"]["message"]


def test_an_unauthenticated_command_records_nothing(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/advance", json={"to_stage": "requirements"})

    assert answer.status_code == 401
    assert version_of(client, oid) == 1


# -- 403 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(VALID_BODIES))
def test_a_viewer_may_give_no_command(client: TestClient, command: str) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/{command}", json=VALID_BODIES[command], headers=auth("viewer"))

    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"]["rule"] == "role.viewer"
    assert version_of(client, oid) == 1


def test_a_viewer_may_neither_create_nor_patch(client: TestClient) -> None:
    oid = create(client)["id"]

    created = client.post("/opportunities", json={"type": "new", "customer": customer()}, headers=auth("viewer"))
    patched = client.patch(f"/opportunities/{oid}", json={"title": "t"}, headers=auth("viewer"))

    assert (created.status_code, patched.status_code) == (403, 403)
    assert version_of(client, oid) == 1


@pytest.mark.parametrize("command", ["advance", "follow-ups", "pause", "lose", "void", "documents"])
def test_a_rep_may_not_act_on_another_reps_opportunity(client: TestClient, command: str) -> None:
    oid = create(client, "rep-1")["id"]

    answer = client.post(f"/opportunities/{oid}/{command}", json=VALID_BODIES[command], headers=auth("rep-2"))

    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"]["rule"] == "role.owner"
    assert version_of(client, oid) == 1


def test_a_rep_may_not_claim_an_opportunity_that_is_not_pooled(client: TestClient) -> None:
    oid = create(client, "rep-1")["id"]

    answer = client.post(f"/opportunities/{oid}/claim", json={}, headers=auth("rep-2"))

    assert answer.status_code in (403, 409), answer.text
    state = client.get(f"/opportunities/{oid}", headers=auth("admin")).json()
    assert (state["owner_id"], state["version"]) == ("rep-1", 1)


def test_a_manager_may_not_act_on_another_teams_opportunity(client: TestClient) -> None:
    oid = create(client, "rep-1")["id"]

    answer = client.post(f"/opportunities/{oid}/reclaim", json={"reason": "r"}, headers=auth("manager-west"))

    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"]["rule"] == "role.team"
    assert version_of(client, oid) == 1


@pytest.mark.parametrize("command", ["assign", "reclaim"])
def test_a_rep_may_not_assign_or_reclaim_even_own_opportunities(client: TestClient, command: str) -> None:
    oid = create(client, "rep-1")["id"]

    answer = client.post(f"/opportunities/{oid}/{command}", json=VALID_BODIES[command], headers=auth("rep-1"))

    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"]["rule"] == f"role.{command}"
    assert version_of(client, oid) == 1


def test_a_rep_may_not_pass_occurred_at(client: TestClient) -> None:
    oid = create(client, "rep-1")["id"]
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()

    command = client.post(
        f"/opportunities/{oid}/advance",
        json={"to_stage": "requirements", "occurred_at": yesterday},
        headers=auth("rep-1"),
    )
    created = client.post(
        "/opportunities",
        json={"type": "new", "customer": customer(), "occurred_at": yesterday},
        headers=auth("rep-1"),
    )

    assert (command.status_code, created.status_code) == (403, 403)
    assert command.json()["detail"]["rule"] == "role.occurred_at"
    assert version_of(client, oid) == 1


@pytest.mark.parametrize(
    ("principal", "fields"),
    [("rep-1", {"owner_id": "rep-2"}), ("rep-1", {"team_id": "west"}), ("manager-east", {"team_id": "west"})],
)
def test_a_create_outside_ones_own_reach_is_refused(
    client: TestClient, principal: str, fields: dict[str, str]
) -> None:
    sent = customer()

    answer = client.post("/opportunities", json={"type": "new", "customer": sent, **fields}, headers=auth(principal))

    assert answer.status_code == 403, answer.text
    assert client.get("/opportunities", params={"uscc": sent["uscc"]}, headers=auth("admin")).json()["total"] == 0


# -- 404 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("oid", [str(uuid4()), "not-a-uuid", "123"])
def test_an_unknown_or_malformed_id_answers_404(client: TestClient, oid: str) -> None:
    answers = [
        client.get(f"/opportunities/{oid}", headers=auth("admin")),
        client.get(f"/opportunities/{oid}/history", headers=auth("admin")),
        client.post(f"/opportunities/{oid}/advance", json={"to_stage": "requirements"}, headers=auth("admin")),
        client.patch(f"/opportunities/{oid}", json={"title": "t"}, headers=auth("admin")),
    ]

    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert all(a.json()["detail"]["error"] == "not_found" for a in answers)


# -- 409 -----------------------------------------------------------------------------------------


def test_a_command_not_allowed_from_the_status_answers_409_with_status_and_allowed_commands(
    client: TestClient,
) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/resume", json={}, headers=auth("rep-1"))

    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert (detail["error"], detail["command"], detail["status"]) == ("command_not_allowed", "resume", "open")
    assert "advance" in detail["allowed_commands"]
    assert "resume" not in detail["allowed_commands"]
    assert version_of(client, oid) == 1


@pytest.mark.parametrize(
    ("closing", "body", "refused"),
    [
        ("lose", {"reason": "price"}, "advance"),
        ("lose", {"reason": "price"}, "void"),
        ("void", {"reason": "r"}, "documents"),
        ("void", {"reason": "r"}, "lose"),
    ],
)
def test_a_closed_opportunity_refuses_commands_with_409(
    client: TestClient, closing: str, body: dict[str, str], refused: str
) -> None:
    oid = create(client)["id"]
    closed = act(client, oid, closing, body)

    answer = client.post(f"/opportunities/{oid}/{refused}", json=VALID_BODIES[refused], headers=auth("rep-1"))

    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"]["status"] == closed["status"]
    assert answer.json()["detail"]["allowed_commands"] == closed["allowed_commands"]
    assert version_of(client, oid) == 2


def test_patch_of_a_won_opportunity_is_refused_with_409(client: TestClient) -> None:
    oid = create(client)["id"]
    for stage in ("requirements", "proposal", "negotiation", "signing"):
        act(client, oid, "advance", {"to_stage": stage})
    act(client, oid, "win", {"amount": "10", "contract_ref": "C"})

    answer = client.patch(f"/opportunities/{oid}", json={"title": "late"}, headers=auth("rep-1"))

    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"]["status"] == "won"
    assert version_of(client, oid) == 6


def test_skipping_an_unskippable_stage_is_refused_naming_the_rule(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/advance", json={"to_stage": "negotiation"}, headers=auth("rep-1"))

    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert detail["rule"] == "stage.skippable"
    assert detail["not_skippable"] == ["proposal"]
    assert version_of(client, oid) == 1


@pytest.mark.parametrize(
    ("command", "body", "rule"),
    [
        ("advance", {"to_stage": "initial_contact"}, "advance.forward"),
        ("revert", {"to_stage": "proposal", "reason": "r"}, "revert.backward"),
        ("win", {"amount": "1", "contract_ref": "C"}, "stage.can_win"),
    ],
)
def test_a_stage_move_against_the_pipeline_is_refused_naming_the_rule(
    client: TestClient, command: str, body: dict[str, str], rule: str
) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/{command}", json=body, headers=auth("rep-1"))

    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"]["rule"] == rule
    assert version_of(client, oid) == 1


def test_a_duplicate_active_create_answers_409_with_the_existing_id(client: TestClient) -> None:
    sent = customer()
    existing = create(client, customer=sent)

    answer = client.post("/opportunities", json={"type": "new", "customer": sent}, headers=auth("rep-2"))

    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert detail["existing_opportunity_id"] == existing["id"]
    assert (detail["error"], detail["uscc"], detail["type"]) == ("duplicate_opportunity", sent["uscc"], "new")
    assert client.get("/opportunities", params={"uscc": sent["uscc"]}, headers=auth("admin")).json()["total"] == 1


@pytest.mark.parametrize(
    ("command", "body", "principal"),
    [
        ("pause", {"reason": "r"}, "rep-1"),
        ("defer", VALID_BODIES["defer"], "rep-1"),
        ("reclaim", {"reason": "r"}, "manager-east"),
    ],
)
def test_a_paused_deferred_or_pooled_opportunity_still_blocks_a_duplicate(
    client: TestClient, command: str, body: dict[str, Any], principal: str
) -> None:
    sent = customer()
    existing = create(client, customer=sent)
    act(client, existing["id"], command, body, principal)

    answer = client.post("/opportunities", json={"type": "new", "customer": sent}, headers=auth("rep-1"))

    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"]["existing_opportunity_id"] == existing["id"]


@pytest.mark.parametrize("closing", ["win", "lose", "void"])
def test_a_new_create_succeeds_once_the_active_one_is_closed(client: TestClient, closing: str) -> None:
    sent = customer()
    first = create(client, customer=sent)["id"]
    if closing == "win":
        for stage in ("requirements", "proposal", "negotiation", "signing"):
            act(client, first, "advance", {"to_stage": stage})
    act(client, first, closing, VALID_BODIES[closing])

    second = create(client, "rep-2", customer=sent)
    third = client.post("/opportunities", json={"type": "new", "customer": sent}, headers=auth("rep-1"))

    assert second["id"] != first
    assert third.status_code == 409
    assert third.json()["detail"]["existing_opportunity_id"] == second["id"]
    listed = client.get("/opportunities", params={"uscc": sent["uscc"]}, headers=auth("admin")).json()
    assert listed["total"] == 2


def test_another_type_for_the_same_customer_is_no_duplicate(client: TestClient) -> None:
    sent = customer()

    ids = {create(client, customer=sent, type=kind)["id"] for kind in ("new", "renewal", "resale")}

    assert len(ids) == 3


# -- 412 -----------------------------------------------------------------------------------------


def test_a_stale_if_match_answers_412_and_records_nothing(client: TestClient) -> None:
    oid = create(client)["id"]
    act(client, oid, "follow-ups", {"kind": "call", "note": "n"})

    answer = client.post(
        f"/opportunities/{oid}/advance",
        json={"to_stage": "requirements"},
        headers={**auth("rep-1"), "If-Match": '"1"'},
    )

    assert answer.status_code == 412, answer.text
    assert (answer.json()["detail"]["expected"], answer.json()["detail"]["current"]) == (1, 2)
    assert version_of(client, oid) == 2


@pytest.mark.parametrize("if_match", ["2", '"2"', 'W/"2"'])
def test_a_current_if_match_is_accepted(client: TestClient, if_match: str) -> None:
    oid = create(client)["id"]
    act(client, oid, "follow-ups", {"kind": "call", "note": "n"})

    answer = client.post(
        f"/opportunities/{oid}/advance",
        json={"to_stage": "requirements"},
        headers={**auth("rep-1"), "If-Match": if_match},
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 3


def test_the_etag_of_a_read_is_a_valid_if_match(client: TestClient) -> None:
    oid = create(client)["id"]
    etag = client.get(f"/opportunities/{oid}", headers=auth("rep-1")).headers["ETag"]

    answer = client.patch(f"/opportunities/{oid}", json={"title": "t"}, headers={**auth("rep-1"), "If-Match": etag})

    assert answer.status_code == 200, answer.text


def test_an_if_match_that_is_not_a_version_is_refused_naming_it(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(
        f"/opportunities/{oid}/advance",
        json={"to_stage": "requirements"},
        headers={**auth("rep-1"), "If-Match": "abc"},
    )

    assert answer.status_code == 422, answer.text
    assert "If-Match" in locs(answer)[0]
    assert version_of(client, oid) == 1


# -- 422 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "body", "field"),
    [
        ("advance", {}, "to_stage"),
        ("revert", {"to_stage": "initial_contact"}, "reason"),
        ("follow-ups", {"kind": "call"}, "note"),
        ("defer", {"reason": "r"}, "revisit_on"),
        ("win", {"amount": "1"}, "contract_ref"),
        ("lose", {}, "reason"),
        ("void", {}, "reason"),
        ("assign", {}, "owner_id"),
        ("documents", {"name": "n"}, "url"),
    ],
)
def test_a_missing_field_is_refused_with_422_naming_it(
    client: TestClient, command: str, body: dict[str, str], field: str
) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/{command}", json=body, headers=auth("manager-east"))

    assert answer.status_code == 422, answer.text
    assert ["body", field] in locs(answer)
    assert version_of(client, oid) == 1


def test_a_command_that_needs_a_body_refuses_none(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/advance", headers=auth("rep-1"))

    assert answer.status_code == 422, answer.text
    assert version_of(client, oid) == 1


@pytest.mark.parametrize(
    "field",
    ["type", "customer"],
)
def test_a_create_missing_a_field_is_refused_naming_it(client: TestClient, field: str) -> None:
    body = {"type": "new", "customer": customer()}
    del body[field]

    answer = client.post("/opportunities", json=body, headers=auth("rep-1"))

    assert answer.status_code == 422
    assert ["body", field] in locs(answer)


@pytest.mark.parametrize(
    "uscc",
    [
        "91110000000000000X",  # wrong check character
        "9111000000000000",  # too short
        "91110000I00000000A",  # forbidden letter
        "911100000000000001".lower(),
    ],
)
def test_an_invalid_uscc_is_refused_naming_uscc_and_nothing_is_stored(client: TestClient, uscc: str) -> None:
    start = client.get("/readyz").json()["last_position"]

    answer = client.post(
        "/opportunities", json={"type": "new", "customer": {**customer(), "uscc": uscc}}, headers=auth("rep-1")
    )

    assert answer.status_code == 422, answer.text
    assert locs(answer) == [["body", "customer", "uscc"]]
    assert client.get("/readyz").json()["last_position"] == start


@pytest.mark.parametrize(
    ("field", "value"),
    [("tier", "MID"), ("ownership", "STATE"), ("name", "")],
)
def test_an_invalid_customer_field_is_refused_naming_it(client: TestClient, field: str, value: str) -> None:
    answer = client.post(
        "/opportunities", json={"type": "new", "customer": {**customer(), field: value}}, headers=auth("rep-1")
    )

    assert answer.status_code == 422
    assert ["body", "customer", field] in locs(answer)


def test_a_lost_reason_not_in_the_rules_file_is_refused_naming_reason(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/lose", json={"reason": "bad_luck"}, headers=auth("rep-1"))

    assert answer.status_code == 422, answer.text
    assert locs(answer) == [["body", "reason"]]
    assert "price" in answer.json()["detail"][0]["msg"]
    assert client.get(f"/opportunities/{oid}", headers=auth("rep-1")).json()["status"] == "open"
    assert version_of(client, oid) == 1


@pytest.mark.parametrize("command", ["advance", "revert"])
def test_an_unknown_to_stage_is_refused_naming_to_stage(client: TestClient, command: str) -> None:
    oid = create(client)["id"]

    answer = client.post(
        f"/opportunities/{oid}/{command}", json={"to_stage": "closing", "reason": "r"}, headers=auth("rep-1")
    )

    assert answer.status_code == 422, answer.text
    assert locs(answer) == [["body", "to_stage"]]
    assert version_of(client, oid) == 1


def test_a_renewal_refuses_the_requirements_stage_it_does_not_have(client: TestClient) -> None:
    oid = create(client, type="renewal")["id"]

    answer = client.post(f"/opportunities/{oid}/advance", json={"to_stage": "requirements"}, headers=auth("rep-1"))

    assert answer.status_code == 422, answer.text
    assert locs(answer) == [["body", "to_stage"]]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "advance", {"to_stage": "requirements", "probability": 0.9}),
        ("post", "claim", {"owner_id": "rep-2"}),
        ("patch", "", {"title": "t", "status": "won"}),
    ],
)
def test_an_unknown_field_is_refused_naming_it(
    client: TestClient, method: str, path: str, body: dict[str, Any]
) -> None:
    oid = create(client)["id"]
    extra = next(iter(set(body) - {"to_stage", "title"}))

    answer = client.request(
        method.upper(), f"/opportunities/{oid}/{path}".rstrip("/"), json=body, headers=auth("rep-1")
    )

    assert answer.status_code == 422, answer.text
    assert ["body", extra] in locs(answer)
    assert answer.json()["detail"][0]["type"] == "extra_forbidden"
    assert version_of(client, oid) == 1


def test_an_unknown_field_on_create_is_refused_naming_it(client: TestClient) -> None:
    answer = client.post(
        "/opportunities", json={"type": "new", "customer": customer(), "stage": "signing"}, headers=auth("rep-1")
    )

    assert answer.status_code == 422
    assert ["body", "stage"] in locs(answer)


def test_occurred_at_in_the_future_is_refused_naming_it(client: TestClient) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    oid = create(client)["id"]
    sent = customer()

    created = client.post(
        "/opportunities",
        json={"type": "new", "customer": sent, "owner_id": "rep-1", "team_id": "east", "occurred_at": tomorrow},
        headers=auth("service"),
    )
    command = client.post(
        f"/opportunities/{oid}/follow-ups",
        json={"kind": "call", "note": "n", "occurred_at": tomorrow},
        headers=auth("service"),
    )

    assert (created.status_code, command.status_code) == (422, 422)
    assert locs(created) == [["body", "occurred_at"]]
    assert locs(command) == [["body", "occurred_at"]]
    assert version_of(client, oid) == 1
    assert client.get("/opportunities", params={"uscc": sent["uscc"]}, headers=auth("admin")).json()["total"] == 0


def test_occurred_at_without_a_time_zone_is_refused_naming_it(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(
        f"/opportunities/{oid}/follow-ups",
        json={"kind": "call", "note": "n", "occurred_at": "2026-01-01T09:00:00"},
        headers=auth("service"),
    )

    assert answer.status_code == 422
    assert ["body", "occurred_at"] in locs(answer)


@pytest.mark.parametrize(
    ("command", "body", "field"),
    [
        ("pause", {"reason": "r", "until": str(TODAY - timedelta(days=1))}, "until"),
        ("defer", {"reason": "r", "revisit_on": str(TODAY - timedelta(days=1))}, "revisit_on"),
        ("follow-ups", {"kind": "fax", "note": "n"}, "kind"),
    ],
)
def test_a_value_the_rules_refuse_is_named(
    client: TestClient, command: str, body: dict[str, str], field: str
) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/{command}", json=body, headers=auth("rep-1"))

    assert answer.status_code == 422, answer.text
    assert ["body", field] in locs(answer)
    assert version_of(client, oid) == 1


def test_a_negative_amount_is_refused_naming_it(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.patch(f"/opportunities/{oid}", json={"amount": "-5"}, headers=auth("rep-1"))

    assert answer.status_code == 422
    assert ["body", "amount"] in locs(answer)
    assert history_length(client, oid) == 1
