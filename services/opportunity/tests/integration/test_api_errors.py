"""Refusals answer the exact status code, name the field or rule, and record nothing.

Each test runs its cases as subtests against one app, so the suite stays fast on both stores.
"""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from services.opportunity.tests.api_calls import (
    act,
    create,
    to_signing,
    total_for,
    won_contract,
)
from tests.support.principals import auth, customer

TODAY = datetime.now(UTC).date()

# A valid body for every command, so only the rule under test can refuse it.
VALID_BODIES: dict[str, dict[str, Any]] = {
    "advance": {"to_stage": "requirements"},
    "revert": {"to_stage": "initial_contact", "reason": "r"},
    "follow-ups": {"kind": "call", "note": "n"},
    "pause": {"reason": "r"},
    "resume": {},
    "defer": {"reason": "tender_cycle", "revisit_on": str(TODAY + timedelta(days=30))},
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


def version_of(client: TestClient, oid: str) -> int:
    return int(client.get(f"/opportunities/{oid}", headers=auth("admin")).json()["version"])


def locs(answer: Any) -> list[list[Any]]:
    """The `loc` of every validation problem in a 422 answer."""
    return [problem["loc"] for problem in answer.json()["detail"]]


def assert_each_refused_naming(
    client: TestClient,
    subtests: pytest.Subtests,
    oid: str,
    cases: list[tuple[str, dict[str, Any], str]],
) -> None:
    """Each (command, body, field) of `cases`, given by the team's manager to the new
    opportunity `oid`, answers 422 naming the body's `field`; none records anything."""
    for command, body, field in cases:
        with subtests.test(command=command, field=field):
            answer = client.post(
                f"/opportunities/{oid}/{command}", json=body, headers=auth("manager-east")
            )
            assert answer.status_code == 422, answer.text
            assert ["body", field] in locs(answer)
    assert version_of(client, oid) == 1


# -- 401 -----------------------------------------------------------------------------------------
# Every endpoint against missing and bad tokens: tests/security/test_authentication.py.


def test_an_unauthenticated_command_records_nothing(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/advance", json={"to_stage": "requirements"})

    assert answer.status_code == 401
    assert version_of(client, oid) == 1


# -- 403 -----------------------------------------------------------------------------------------
# Each role against each command and query (SPEC §4.4): tests/security/test_roles.py.


def test_a_rep_may_not_claim_an_opportunity_that_is_not_pooled(client: TestClient) -> None:
    oid = create(client, "rep-1")["id"]

    answer = client.post(f"/opportunities/{oid}/claim", json={}, headers=auth("rep-2"))

    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"]["status"] == "open"
    state = client.get(f"/opportunities/{oid}", headers=auth("admin")).json()
    assert (state["owner_id"], state["version"]) == ("rep-1", 1)


def test_a_create_outside_ones_own_reach_is_refused(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    cases = [
        ("rep-1", {"owner_id": "rep-2"}),
        ("rep-1", {"team_id": "west"}),
        ("manager-east", {"team_id": "west"}),
    ]
    for principal, fields in cases:
        with subtests.test(principal=principal, fields=fields):
            sent = customer()
            answer = client.post(
                "/opportunities",
                json={"type": "new", "customer": sent, **fields},
                headers=auth(principal),
            )
            assert answer.status_code == 403, answer.text
            assert total_for(client, sent["uscc"]) == 0


# -- 404 -----------------------------------------------------------------------------------------


def test_an_unknown_or_malformed_id_answers_404(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    for oid in (str(uuid4()), "not-a-uuid", "123"):
        with subtests.test(id=oid):
            answers = [
                client.get(f"/opportunities/{oid}", headers=auth("admin")),
                client.get(f"/opportunities/{oid}/history", headers=auth("admin")),
                client.post(
                    f"/opportunities/{oid}/advance",
                    json={"to_stage": "requirements"},
                    headers=auth("admin"),
                ),
                client.post(f"/opportunities/{oid}/claim", headers=auth("rep-1")),
                client.patch(f"/opportunities/{oid}", json={"title": "t"}, headers=auth("admin")),
            ]
            assert [a.status_code for a in answers] == [404] * 5
            assert all(a.json()["detail"]["error"] == "not_found" for a in answers)


# -- 409 -----------------------------------------------------------------------------------------


def test_a_command_not_allowed_from_the_status_answers_409_with_status_and_allowed_commands(
    client: TestClient,
) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/resume", json={}, headers=auth("rep-1"))

    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert (detail["error"], detail["command"], detail["status"]) == (
        "command_not_allowed",
        "resume",
        "open",
    )
    assert "advance" in detail["allowed_commands"]
    assert "resume" not in detail["allowed_commands"]
    assert version_of(client, oid) == 1


def test_a_closed_opportunity_refuses_commands_with_409(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    cases = [
        ("lose", {"reason": "price"}, ["advance", "void", "follow-ups", "claim"]),
        ("void", {"reason": "r"}, ["documents", "lose", "resume", "assign"]),
    ]
    for closing, body, refused in cases:
        oid = create(client)["id"]
        closed = act(client, oid, closing, body, "manager-east")
        for command in refused:
            with subtests.test(closed=closing, command=command):
                answer = client.post(
                    f"/opportunities/{oid}/{command}",
                    json=VALID_BODIES[command],
                    headers=auth("manager-east"),
                )
                assert answer.status_code == 409, answer.text
                assert answer.json()["detail"]["status"] == closed["status"]
                assert answer.json()["detail"]["allowed_commands"] == closed["allowed_commands"]
        assert version_of(client, oid) == 2


def test_patch_of_a_won_opportunity_is_refused_with_409(client: TestClient) -> None:
    oid = create(client)["id"]
    to_signing(client, oid)
    act(client, oid, "win", {"amount": "10", "contract_ref": "C"})

    answer = client.patch(f"/opportunities/{oid}", json={"title": "late"}, headers=auth("rep-1"))

    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"]["status"] == "won"
    assert version_of(client, oid) == 6


def test_skipping_an_unskippable_stage_is_refused_naming_the_rule(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(
        f"/opportunities/{oid}/advance", json={"to_stage": "negotiation"}, headers=auth("rep-1")
    )

    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert detail["rule"] == "stage.skippable"
    assert detail["not_skippable"] == ["proposal"]
    assert "proposal" in detail["message"]
    assert version_of(client, oid) == 1


def test_a_stage_move_against_the_pipeline_is_refused_naming_the_rule(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    oid = create(client)["id"]
    cases = [
        ("advance", {"to_stage": "initial_contact"}, "advance.forward"),
        ("revert", {"to_stage": "proposal", "reason": "r"}, "revert.backward"),
        ("win", {"amount": "1", "contract_ref": "C"}, "stage.can_win"),
    ]
    for command, body, rule in cases:
        with subtests.test(command=command):
            answer = client.post(
                f"/opportunities/{oid}/{command}", json=body, headers=auth("rep-1")
            )
            assert answer.status_code == 409, answer.text
            assert answer.json()["detail"]["rule"] == rule
    assert version_of(client, oid) == 1


def test_a_duplicate_active_create_answers_409_with_the_existing_id(client: TestClient) -> None:
    sent = customer()
    existing = create(client, customer=sent)

    answer = client.post(
        "/opportunities", json={"type": "new", "customer": sent}, headers=auth("rep-2")
    )

    assert answer.status_code == 409, answer.text
    detail = answer.json()["detail"]
    assert detail["existing_opportunity_id"] == existing["id"]
    assert (detail["error"], detail["uscc"], detail["type"]) == (
        "duplicate_opportunity",
        sent["uscc"],
        "new",
    )
    assert total_for(client, sent["uscc"]) == 1


def test_a_paused_deferred_or_pooled_opportunity_still_blocks_a_duplicate(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    for command, principal in (("pause", "rep-1"), ("defer", "rep-1"), ("reclaim", "manager-east")):
        with subtests.test(command=command):
            sent = customer()
            existing = create(client, customer=sent)
            act(client, existing["id"], command, VALID_BODIES[command], principal)
            answer = client.post(
                "/opportunities", json={"type": "new", "customer": sent}, headers=auth("rep-1")
            )
            assert answer.status_code == 409, answer.text
            assert answer.json()["detail"]["existing_opportunity_id"] == existing["id"]


def test_a_new_create_succeeds_once_the_active_one_is_won_lost_or_voided(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    # A contract still running would make a second `new` contradict the type rules.
    ended = {
        "contract_start_on": str(TODAY - timedelta(days=400)),
        "contract_end_on": str(TODAY - timedelta(days=1)),
    }
    for closing in ("win", "lose", "void"):
        with subtests.test(closing=closing):
            sent = customer()
            first = create(client, customer=sent)["id"]
            body = VALID_BODIES[closing]
            if closing == "win":
                to_signing(client, first)
                body = {**body, **ended}
            act(client, first, closing, body)

            second = create(client, "rep-2", customer=sent)
            third = client.post(
                "/opportunities", json={"type": "new", "customer": sent}, headers=auth("rep-1")
            )

            assert second["id"] != first
            assert third.status_code == 409
            assert third.json()["detail"]["existing_opportunity_id"] == second["id"]
            assert total_for(client, sent["uscc"]) == 2


def test_another_type_for_the_same_customer_is_no_duplicate(client: TestClient) -> None:
    sent = customer()
    won_contract(client, sent, running=False)

    ids = {create(client, customer=sent, type=kind)["id"] for kind in ("new", "renewal", "resale")}

    assert len(ids) == 3
    assert total_for(client, sent["uscc"]) == 4


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


def test_a_current_if_match_is_accepted_in_each_spelling(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    oid = create(client)["id"]

    for version, if_match in enumerate(["1", '"2"', 'W/"3"'], start=1):
        with subtests.test(if_match=if_match):
            answer = client.post(
                f"/opportunities/{oid}/follow-ups",
                json={"kind": "call", "note": "n"},
                headers={**auth("rep-1"), "If-Match": if_match},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["version"] == version + 1


def test_the_etag_of_a_read_is_a_valid_if_match(client: TestClient) -> None:
    oid = create(client)["id"]
    etag = client.get(f"/opportunities/{oid}", headers=auth("rep-1")).headers["ETag"]

    answer = client.patch(
        f"/opportunities/{oid}", json={"title": "t"}, headers={**auth("rep-1"), "If-Match": etag}
    )

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


def test_a_missing_field_is_refused_with_422_naming_it(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    oid = create(client)["id"]
    cases = [
        ("advance", {}, "to_stage"),
        ("revert", {"to_stage": "initial_contact"}, "reason"),
        ("follow-ups", {"kind": "call"}, "note"),
        ("pause", {}, "reason"),
        ("defer", {}, "reason"),
        ("win", {"amount": "1"}, "contract_ref"),
        ("win", {"contract_ref": "C"}, "amount"),
        ("lose", {}, "reason"),
        ("void", {}, "reason"),
        ("reclaim", {}, "reason"),
        ("assign", {}, "owner_id"),
        ("key-persons", {}, "name"),
        ("documents", {"name": "n"}, "url"),
    ]
    assert_each_refused_naming(client, subtests, oid, cases)


def test_a_command_that_needs_a_body_refuses_none(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(f"/opportunities/{oid}/advance", headers=auth("rep-1"))

    assert answer.status_code == 422, answer.text
    assert version_of(client, oid) == 1


def test_a_create_missing_a_field_is_refused_naming_it(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    """`type` and the customer's `tier` may be left out: the rules give them (SPEC §8.2)."""
    answer = client.post("/opportunities", json={"type": "new"}, headers=auth("rep-1"))
    assert answer.status_code == 422
    assert ["body", "customer"] in locs(answer)
    for field in ("uscc", "name", "ownership"):
        with subtests.test(field=field):
            sent = customer()
            del sent[field]
            answer = client.post("/opportunities", json={"customer": sent}, headers=auth("rep-1"))
            assert answer.status_code == 422
            assert ["body", "customer", field] in locs(answer)


def test_an_invalid_uscc_is_refused_naming_uscc_and_nothing_is_stored(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    start = client.get("/readyz").json()["last_position"]
    valid = customer()["uscc"]
    wrong_check = valid[:-1] + ("0" if valid[-1] != "0" else "1")
    cases = {
        "wrong check character": wrong_check,
        "too short": valid[:16],
        "lower case": valid[:8] + "a" + valid[9:],
        "forbidden letter": valid[:8] + "I" + valid[9:],
    }
    for case, uscc in cases.items():
        with subtests.test(case=case):
            answer = client.post(
                "/opportunities",
                json={"type": "new", "customer": {**customer(), "uscc": uscc}},
                headers=auth("rep-1"),
            )
            assert answer.status_code == 422, answer.text
            assert locs(answer) == [["body", "customer", "uscc"]]
    assert client.get("/readyz").json()["last_position"] == start


def test_an_invalid_customer_field_is_refused_naming_it(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    for field, value in (("tier", "MID"), ("ownership", "STATE"), ("name", "")):
        with subtests.test(field=field):
            answer = client.post(
                "/opportunities",
                json={"type": "new", "customer": {**customer(), field: value}},
                headers=auth("rep-1"),
            )
            assert answer.status_code == 422
            assert ["body", "customer", field] in locs(answer)


def test_a_lost_reason_not_in_the_rules_file_is_refused_naming_reason(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(
        f"/opportunities/{oid}/lose", json={"reason": "bad_luck"}, headers=auth("rep-1")
    )

    assert answer.status_code == 422, answer.text
    assert locs(answer) == [["body", "reason"]]
    assert "price" in answer.json()["detail"][0]["msg"]
    assert client.get(f"/opportunities/{oid}", headers=auth("rep-1")).json()["status"] == "open"
    assert version_of(client, oid) == 1


def test_an_unknown_to_stage_is_refused_naming_to_stage(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    oid = create(client)["id"]
    sent = customer()
    won_contract(client, sent, running=True)
    renewal = create(client, type="renewal", customer=sent)["id"]
    cases = [
        ("advance", oid, {"to_stage": "closing"}),
        ("revert", oid, {"to_stage": "closing", "reason": "r"}),
        ("advance", renewal, {"to_stage": "requirements"}),  # a stage renewals do not have
    ]
    for command, target, body in cases:
        with subtests.test(command=command, body=body):
            answer = client.post(
                f"/opportunities/{target}/{command}", json=body, headers=auth("rep-1")
            )
            assert answer.status_code == 422, answer.text
            assert locs(answer) == [["body", "to_stage"]]
    assert (version_of(client, oid), version_of(client, renewal)) == (1, 1)


def test_an_unknown_field_is_refused_naming_it(
    client: TestClient, subtests: pytest.Subtests
) -> None:
    oid = create(client)["id"]
    cases = [
        (
            "POST",
            f"/opportunities/{oid}/advance",
            {"to_stage": "requirements", "probability": 0.9},
            "probability",
        ),
        ("POST", f"/opportunities/{oid}/claim", {"owner_id": "rep-2"}, "owner_id"),
        ("PATCH", f"/opportunities/{oid}", {"title": "t", "status": "won"}, "status"),
        (
            "POST",
            "/opportunities",
            {"type": "new", "customer": customer(), "stage": "signing"},
            "stage",
        ),
    ]
    for method, path, body, extra in cases:
        with subtests.test(method=method, path=path, field=extra):
            answer = client.request(method, path, json=body, headers=auth("rep-1"))
            assert answer.status_code == 422, answer.text
            assert locs(answer) == [["body", extra]]
            assert answer.json()["detail"][0]["type"] == "extra_forbidden"
    assert version_of(client, oid) == 1


def test_occurred_at_in_the_future_is_refused_naming_it(client: TestClient) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    oid = create(client)["id"]
    sent = customer()

    created = client.post(
        "/opportunities",
        json={
            "type": "new",
            "customer": sent,
            "owner_id": "rep-1",
            "team_id": "east",
            "occurred_at": tomorrow,
        },
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
    assert total_for(client, sent["uscc"]) == 0


def test_occurred_at_without_a_time_zone_is_refused_naming_it(client: TestClient) -> None:
    oid = create(client)["id"]

    answer = client.post(
        f"/opportunities/{oid}/follow-ups",
        json={"kind": "call", "note": "n", "occurred_at": "2026-01-01T09:00:00"},
        headers=auth("service"),
    )

    assert answer.status_code == 422
    assert ["body", "occurred_at"] in locs(answer)
    assert version_of(client, oid) == 1


def test_a_value_the_rules_refuse_is_named(client: TestClient, subtests: pytest.Subtests) -> None:
    oid = create(client)["id"]
    yesterday = str(TODAY - timedelta(days=1))
    cases = [
        ("pause", {"reason": "r", "until": yesterday}, "until"),
        ("defer", {"reason": "tender_cycle", "revisit_on": yesterday}, "revisit_on"),
        ("follow-ups", {"kind": "fax", "note": "n"}, "kind"),
        ("assign", {"owner_id": ""}, "owner_id"),
        ("pause", {"reason": ""}, "reason"),
    ]
    assert_each_refused_naming(client, subtests, oid, cases)


def test_a_contract_that_ends_before_it_starts_is_refused_naming_contract_end_on(
    client: TestClient,
) -> None:
    oid = create(client)["id"]
    to_signing(client, oid)

    answer = client.post(
        f"/opportunities/{oid}/win",
        json={
            "amount": "1",
            "contract_ref": "C",
            "contract_start_on": "2031-06-01",
            "contract_end_on": "2031-01-01",
        },
        headers=auth("rep-1"),
    )

    assert answer.status_code == 422, answer.text
    assert locs(answer) == [["body", "contract_end_on"]]
    assert version_of(client, oid) == 5


def test_a_bad_amount_is_refused_naming_it(client: TestClient, subtests: pytest.Subtests) -> None:
    oid = create(client)["id"]

    for amount in ("-5", "1.234", "lots"):
        with subtests.test(amount=amount):
            answer = client.patch(
                f"/opportunities/{oid}", json={"amount": amount}, headers=auth("rep-1")
            )
            assert answer.status_code == 422
            assert ["body", "amount"] in locs(answer)
    assert version_of(client, oid) == 1
