"""An HTTP create under the classification and type rules (SPEC §8.2): the tier and type the
rules give when left out, and each refusal — 422 naming the field (and the rule), nothing
recorded."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.customer_rules import TypeRules
from contracts.rules import load_rulebook
from opportunity.main import build_app
from opportunity.settings import Settings
from services.opportunity.tests.api_calls import create, total_for, won_contract
from tests.support.principals import PRINCIPALS, auth, customer


def untiered(**facts: Any) -> dict[str, Any]:
    """A new customer (unless `facts` name its uscc) given without a tier."""
    sent: dict[str, Any] = customer()
    del sent["tier"]
    return sent | facts


def last_position(client: TestClient) -> int:
    return int(client.get("/readyz").json()["last_position"])


def refused(client: TestClient, body: dict[str, Any], principal: str = "rep-1") -> dict[str, Any]:
    """A create that must answer 422 and record nothing; its one problem."""
    start = last_position(client)
    answer = client.post("/opportunities", json=body, headers=auth(principal))
    assert answer.status_code == 422, answer.text
    assert last_position(client) == start
    (problem,) = answer.json()["detail"]
    return dict(problem)


def test_a_customer_without_a_tier_gets_the_tier_of_the_first_rule_that_holds(
    client: TestClient,
) -> None:
    state = create(client, customer=untiered(employees=2500, annual_revenue="5000000"))

    assert (state["customer"]["tier"], state["customer"]["classified_by"]) == (
        "KA",
        "ka-headcount",
    )
    assert (state["customer"]["employees"], state["customer"]["annual_revenue"]) == (
        2500,
        "5000000",
    )


def test_a_customer_with_a_tier_is_classified_by_hand(client: TestClient) -> None:
    state = create(client, customer=customer(tier="SMB") | {"employees": 5000})

    assert (state["customer"]["tier"], state["customer"]["classified_by"]) == ("SMB", "manual")


def test_no_tier_and_no_rule_is_refused_naming_customer_tier(client: TestClient) -> None:
    sent = untiered(ownership="SOE", industry="banking")

    problem = refused(client, {"type": "new", "customer": sent})

    assert problem["loc"] == ["body", "customer", "tier"]
    assert "no classification rule matched" in problem["msg"]
    assert "industry=banking, ownership=SOE" in problem["msg"]
    assert total_for(client, sent["uscc"]) == 0


def test_a_create_without_type_or_tier_gets_both_from_the_rules(client: TestClient) -> None:
    fresh, running, ended = customer(), customer(), customer()
    won_contract(client, running, running=True)
    won_contract(client, ended, running=False)

    answers = {
        name: client.post(
            "/opportunities",
            json={"customer": untiered(uscc=sent["uscc"], employees=10)},
            headers=auth("rep-2"),
        )
        for name, sent in (("fresh", fresh), ("running", running), ("ended", ended))
    }

    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(
        answers, 201
    )
    states = {name: answer.json() for name, answer in answers.items()}
    assert {name: (s["type"], s["pipeline_id"]) for name, s in states.items()} == {
        "fresh": ("new", "new"),
        "running": ("resale", "resale"),
        "ended": ("new", "new"),
    }
    assert {s["customer"]["classified_by"] for s in states.values()} == {"smb-headcount"}


def test_new_while_a_contract_runs_is_refused_naming_type_and_the_rule(
    client: TestClient,
) -> None:
    sent = customer()
    won_contract(client, sent, running=True)

    problem = refused(client, {"type": "new", "customer": sent})

    assert problem["loc"] == ["body", "type"]
    assert (problem["rule"], problem["type"]) == ("type.running_contract", "type_rule")
    assert total_for(client, sent["uscc"]) == 1


@pytest.mark.parametrize("type_", ["resale", "renewal"])
def test_a_resale_or_renewal_for_a_customer_that_never_won_is_refused(
    client: TestClient, type_: str
) -> None:
    sent = customer()
    lost = create(client, customer=sent)["id"]
    client.post(f"/opportunities/{lost}/lose", json={"reason": "price"}, headers=auth("rep-1"))

    problem = refused(client, {"type": type_, "customer": sent})

    assert problem["loc"] == ["body", "type"]
    assert problem["rule"] == "type.no_contract"
    assert total_for(client, sent["uscc"]) == 1


def test_the_role_is_checked_before_the_type(client: TestClient) -> None:
    sent = customer()

    answer = client.post(
        "/opportunities", json={"type": "resale", "customer": sent}, headers=auth("viewer")
    )

    assert answer.status_code == 403, answer.text


@pytest.fixture
def relaxed(store_url: str) -> Iterator[TestClient]:
    """The service with `type_rules.enforce: false`."""
    rules = load_rulebook().model_copy(update={"type_rules": TypeRules(enforce=False)})
    service = build_app(Settings(eventstore_url=store_url), rules=rules, principals=PRINCIPALS)
    with TestClient(service) as test_client:
        yield test_client


def test_without_enforce_a_type_against_the_history_is_recorded(relaxed: TestClient) -> None:
    running = customer()
    won_contract(relaxed, running, running=True)

    resale = create(relaxed, type="resale")
    new = create(relaxed, type="new", customer=running)
    derived = relaxed.post(
        "/opportunities",
        json={"customer": untiered(uscc=running["uscc"], employees=10)},
        headers=auth("rep-1"),
    )

    assert (resale["type"], new["type"]) == ("resale", "new")
    # Left out, the type is still the one the history gives.
    assert derived.status_code == 201, derived.text
    assert derived.json()["type"] == "resale"
