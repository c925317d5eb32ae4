"""The customer record over HTTP (SPEC §8.1): one customer with its opportunities and contracts,
the searchable list, key persons added, changed and removed (each refusal naming why), who may
read and change a customer, and the key persons in every opportunity state."""

from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from services.opportunity.tests.api_calls import act, create, to_signing, won_contract
from tests.support.principals import auth, customer

CEO = {"name": "王总", "title": "CEO", "role": "decision_maker", "stance": "supporter"}


def shown(client: TestClient, uscc: str, principal: str = "admin") -> dict[str, Any]:
    answer = client.get(f"/customers/{uscc}", headers=auth(principal))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def add(
    client: TestClient, uscc: str, person: dict[str, Any], principal: str = "rep-1"
) -> dict[str, Any]:
    answer = client.post(f"/customers/{uscc}/key-persons", json=person, headers=auth(principal))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def chain(client: TestClient) -> str:
    """A customer of rep-1 with CEO (1) ← CIO (2) ← IT manager (3); its uscc."""
    uscc = create(client)["customer"]["uscc"]
    add(client, uscc, CEO)
    add(client, uscc, {"name": "Li", "title": "CIO", "role": "influencer", "reports_to": "1"})
    add(client, uscc, {"name": "Zhao", "role": "user", "reports_to": "2"})
    return str(uscc)


def reports(client: TestClient, uscc: str) -> dict[str, str | None]:
    return {p["id"]: p["reports_to"] for p in shown(client, uscc)["key_persons"]}


def customer_events(client: TestClient, uscc: str) -> list[dict[str, Any]]:
    """The customer record's envelopes in the notification feed, in recording order."""
    found, after = [], 0
    while True:
        answer = client.get(
            "/notifications", params={"after": after, "limit": 10_000}, headers=auth("service")
        )
        page = answer.json()
        if not page["items"]:
            return found
        found += [
            item["envelope"]
            for item in page["items"]
            if item["envelope"]["event_type"].startswith("Customer")
            and item["envelope"]["payload"]["uscc"] == uscc
        ]
        after = page["next_after"]


def refused_field(answer: Any) -> str:
    assert answer.status_code == 422, answer.text
    return str(answer.json()["detail"][0]["loc"][-1])


# -- one customer ------------------------------------------------------------------------------


def test_a_created_opportunity_records_its_customer(client: TestClient) -> None:
    profile = customer(industry="manufacturing", region="east", registered_capital="5000000.00")
    created = create(client, customer={**profile, "employees": 120})

    found = shown(client, profile["uscc"], "rep-1")

    assert found["version"] == 1
    assert {k: found[k] for k in ("uscc", "name", "tier", "ownership", "industry", "region")} == {
        k: profile[k] for k in ("uscc", "name", "tier", "ownership", "industry", "region")
    }
    assert (found["registered_capital"], found["employees"]) == ("5000000.00", 120)
    assert found["annual_revenue"] is None
    assert found["key_persons"] == []
    assert found["opportunities"] == [
        {
            "id": created["id"],
            "type": "new",
            "status": "open",
            "stage": "initial_contact",
            "owner_id": "rep-1",
        }
    ]
    assert found["contracts"] == []


def test_a_later_opportunity_updates_the_profile_and_keeps_what_it_leaves_out(
    client: TestClient,
) -> None:
    profile = customer(industry="manufacturing")
    won_contract(client, profile, running=True)
    create(client, customer=profile, type="resale")
    assert shown(client, profile["uscc"])["version"] == 1  # nothing changed: nothing recorded

    create(client, customer={**profile, "name": "ACME Group", "region": "north"}, type="renewal")

    found = shown(client, profile["uscc"])
    assert found["version"] == 2
    assert (found["name"], found["region"], found["industry"]) == (
        "ACME Group",
        "north",
        "manufacturing",
    )
    assert len(found["opportunities"]) == 3


def test_a_won_opportunity_shows_as_a_contract(client: TestClient) -> None:
    oid = create(client)["id"]
    to_signing(client, oid)
    won = act(
        client,
        oid,
        "win",
        {
            "amount": "88000.00",
            "contract_ref": "HT-7",
            "contract_start_on": "2027-01-01",
            "contract_end_on": "2027-12-31",
        },
    )

    found = shown(client, won["customer"]["uscc"])

    assert found["contracts"] == [
        {
            "opportunity_id": oid,
            "contract_ref": "HT-7",
            "amount": "88000.00",
            "start_on": "2027-01-01",
            "end_on": "2027-12-31",
        }
    ]
    assert found["opportunities"][0]["status"] == "won"


@pytest.mark.parametrize("uscc", [customer()["uscc"], "not-a-uscc"])
def test_an_unknown_customer_is_not_found(client: TestClient, uscc: str) -> None:
    path = f"/customers/{uscc}/key-persons"

    assert client.get(f"/customers/{uscc}", headers=auth("admin")).status_code == 404
    assert client.post(path, json=CEO, headers=auth("admin")).status_code == 404
    assert client.patch(f"{path}/1", json={}, headers=auth("admin")).status_code == 404
    assert client.delete(f"{path}/1", headers=auth("admin")).status_code == 404


# -- key persons --------------------------------------------------------------------------------


def test_an_added_key_person_is_answered_with_its_id_and_the_customers_version(
    client: TestClient,
) -> None:
    uscc = create(client)["customer"]["uscc"]

    added = add(client, uscc, {**CEO, "phone": "138 0000 0000", "email": "wang@example.com"})

    assert added == {
        "id": "1",
        "name": "王总",
        "title": "CEO",
        "role": "decision_maker",
        "stance": "supporter",
        "reports_to": None,
        "phone": "138 0000 0000",
        "email": "wang@example.com",
        "note": None,
        "uscc": uscc,
        "version": 2,
    }
    assert shown(client, uscc)["key_persons"] == [
        {k: v for k, v in added.items() if k not in ("uscc", "version")}
    ]


def test_a_key_persons_stance_is_unknown_unless_given(client: TestClient) -> None:
    uscc = create(client)["customer"]["uscc"]

    assert add(client, uscc, {"name": "Li", "role": "user"})["stance"] == "unknown"


@pytest.mark.parametrize(
    ("person", "field"),
    [
        ({"role": "user"}, "name"),
        ({"name": "Li"}, "role"),
        ({"name": "Li", "role": "boss"}, "role"),
        ({"name": "Li", "role": "user", "stance": "hostile"}, "stance"),
        ({"name": "Li", "role": "user", "age": 40}, "age"),
        ({"name": "", "role": "user"}, "name"),
        ({"name": "Li", "role": "user", "reports_to": "7"}, "reports_to"),
    ],
)
def test_an_invalid_key_person_is_refused_naming_the_field_and_nothing_is_recorded(
    client: TestClient, person: dict[str, Any], field: str
) -> None:
    uscc = create(client)["customer"]["uscc"]

    answer = client.post(f"/customers/{uscc}/key-persons", json=person, headers=auth("rep-1"))

    assert refused_field(answer) == field
    assert shown(client, uscc)["version"] == 1


def test_a_patch_changes_the_fields_it_names_and_null_clears_one(client: TestClient) -> None:
    uscc = chain(client)
    before = shown(client, uscc)["version"]

    answer = client.patch(
        f"/customers/{uscc}/key-persons/2",
        json={"stance": "opponent", "title": None, "reports_to": None},
        headers=auth("rep-1"),
    )

    assert answer.status_code == 200, answer.text
    changed = answer.json()
    assert (changed["id"], changed["name"], changed["role"]) == ("2", "Li", "influencer")
    assert (changed["stance"], changed["title"], changed["reports_to"]) == ("opponent", None, None)
    assert changed["version"] == before + 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reports_to": "3"}, "reports_to"),
        ({"reports_to": "9"}, "reports_to"),
        ({"name": None}, "name"),
        ({"role": None}, "role"),
        ({"role": "boss"}, "role"),
        ({"nickname": "x"}, "nickname"),
    ],
)
def test_a_patch_the_rules_refuse_names_the_field_and_records_nothing(
    client: TestClient, change: dict[str, Any], field: str
) -> None:
    uscc = chain(client)
    before = shown(client, uscc)["version"]

    answer = client.patch(f"/customers/{uscc}/key-persons/1", json=change, headers=auth("rep-1"))

    assert refused_field(answer) == field
    assert shown(client, uscc)["version"] == before


def test_a_delete_moves_the_reports_up_and_a_removed_person_is_not_found(
    client: TestClient,
) -> None:
    uscc = chain(client)
    path = f"/customers/{uscc}/key-persons/2"

    answer = client.delete(path, headers=auth("rep-1"))

    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == "2"
    assert [(p["id"], p["reports_to"]) for p in answer.json()["key_persons"]] == [
        ("1", None),
        ("3", "1"),
    ]
    assert reports(client, uscc) == {"1": None, "3": "1"}
    assert client.delete(path, headers=auth("rep-1")).status_code == 404
    missing = client.patch(path, json={"name": "Li"}, headers=auth("rep-1"))
    assert missing.status_code == 404
    assert missing.json()["detail"]["person_id"] == "2"
    assert add(client, uscc, {"name": "Qian", "role": "user"})["id"] == "4"
    types = [envelope["event_type"] for envelope in customer_events(client, uscc)]
    assert types[-3:] == [
        "CustomerKeyPersonChanged",
        "CustomerKeyPersonRemoved",
        "CustomerKeyPersonAdded",
    ]


def test_a_stale_if_match_on_a_customer_is_refused(client: TestClient) -> None:
    uscc = create(client)["customer"]["uscc"]

    stale = client.post(
        f"/customers/{uscc}/key-persons", json=CEO, headers={**auth("rep-1"), "If-Match": "5"}
    )
    current = client.post(
        f"/customers/{uscc}/key-persons", json=CEO, headers={**auth("rep-1"), "If-Match": "1"}
    )

    assert stale.status_code == 412
    assert current.status_code == 201


@pytest.mark.parametrize("method", ["post", "patch", "delete"])
def test_a_repeated_idempotency_key_answers_the_first_answer_and_records_once(
    client: TestClient, method: str
) -> None:
    uscc = chain(client)
    headers = {**auth("rep-1"), "Idempotency-Key": str(uuid4())}
    path = f"/customers/{uscc}/key-persons"
    calls = {
        "post": lambda: client.post(path, json={"name": "Qian", "role": "user"}, headers=headers),
        "patch": lambda: client.patch(f"{path}/3", json={"stance": "neutral"}, headers=headers),
        "delete": lambda: client.delete(f"{path}/3", headers=headers),
    }
    before = shown(client, uscc)["version"]

    first, again = calls[method](), calls[method]()

    assert first.status_code in (200, 201), first.text
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert shown(client, uscc)["version"] == before + 1


# -- who may read and change a customer -----------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "reads", "changes"),
    [
        ("rep-1", True, True),
        ("rep-2", False, False),
        ("rep-3", False, False),
        ("manager-east", True, True),
        ("manager-west", False, False),
        ("viewer", True, False),
        ("admin", True, True),
        ("service", True, True),
    ],
)
def test_who_reads_and_changes_the_customer_of_a_reps_opportunity(
    client: TestClient, principal: str, reads: bool, changes: bool
) -> None:
    uscc = create(client, "rep-1")["customer"]["uscc"]

    read = client.get(f"/customers/{uscc}", headers=auth(principal))
    change = client.post(f"/customers/{uscc}/key-persons", json=CEO, headers=auth(principal))

    assert read.status_code == (200 if reads else 403)
    assert change.status_code == (201 if changes else 403)
    assert shown(client, uscc)["version"] == (2 if changes else 1)


def test_reps_read_and_change_the_customers_of_their_teams_pool(client: TestClient) -> None:
    pooled = create(client, "manager-east")
    assert pooled["status"] == "pooled"
    uscc = pooled["customer"]["uscc"]

    assert client.get(f"/customers/{uscc}", headers=auth("rep-2")).status_code == 200
    assert add(client, uscc, CEO, "rep-2")["id"] == "1"
    assert client.get(f"/customers/{uscc}", headers=auth("rep-3")).status_code == 403


def test_a_rep_reads_a_customer_through_any_one_of_its_opportunities(client: TestClient) -> None:
    profile = customer()
    won_contract(client, profile, running=True)  # rep-1's
    create(client, "rep-2", customer=profile, type="resale")

    assert len(shown(client, profile["uscc"], "rep-1")["opportunities"]) == 2
    assert len(shown(client, profile["uscc"], "rep-2")["opportunities"]) == 2


# -- the list ---------------------------------------------------------------------------------------


def listed(client: TestClient, principal: str = "admin", **params: Any) -> dict[str, Any]:
    answer = client.get("/customers", params=params, headers=auth(principal))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def usccs(page: dict[str, Any]) -> list[str]:
    return [item["uscc"] for item in page["items"]]


def test_the_list_matches_part_of_the_name_whatever_the_case(client: TestClient) -> None:
    tag = uuid4().hex[:10]
    upper = create(client, customer=customer(name=f"Alpha {tag.upper()} Trading"))["customer"]
    lower = create(client, customer=customer(name=f"北京 {tag} 科技"))["customer"]
    create(client, customer=customer(name="Someone Else"))

    page = listed(client, name=tag)

    assert sorted(usccs(page)) == sorted([upper["uscc"], lower["uscc"]])
    assert page["total"] == 2
    item = next(i for i in page["items"] if i["uscc"] == upper["uscc"])
    assert (item["name"], item["tier"], item["key_persons"]) == (upper["name"], "KA", [])


def test_the_list_filters_by_tier_and_region_and_shows_key_persons(client: TestClient) -> None:
    tag = uuid4().hex[:10]
    ka = create(client, customer=customer("KA", name=f"{tag} one", region="north"))["customer"]
    smb = create(client, customer=customer("SMB", name=f"{tag} two", region="south"))["customer"]
    add(client, smb["uscc"], CEO)

    assert usccs(listed(client, name=tag, tier="KA")) == [ka["uscc"]]
    assert usccs(listed(client, name=tag, region="south")) == [smb["uscc"]]
    (item,) = listed(client, name=tag, tier="SMB")["items"]
    assert [p["name"] for p in item["key_persons"]] == ["王总"]
    assert item["version"] == 2
    assert listed(client, name=tag, tier="KA", region="south")["total"] == 0


def test_the_list_pages_like_the_opportunities(client: TestClient) -> None:
    tag = uuid4().hex[:10]
    created = {
        create(client, customer=customer(name=f"{tag} {n}"))["customer"]["uscc"] for n in range(3)
    }

    first = listed(client, name=tag, limit=2, offset=0)
    second = listed(client, name=tag, limit=2, offset=2)

    assert (first["total"], first["limit"], first["offset"], len(first["items"])) == (3, 2, 0, 2)
    assert (second["total"], second["offset"], len(second["items"])) == (3, 2, 1)
    assert set(usccs(first)) | set(usccs(second)) == created
    assert [i["name"] for i in first["items"] + second["items"]] == [f"{tag} {n}" for n in range(3)]


@pytest.mark.parametrize(
    ("param", "value"), [("limit", 0), ("limit", 501), ("offset", -1), ("tier", "MID")]
)
def test_the_list_refuses_parameters_out_of_range(
    client: TestClient, param: str, value: object
) -> None:
    answer = client.get("/customers", params={param: value}, headers=auth("admin"))

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", param]


def test_the_list_shows_each_principal_the_customers_of_the_opportunities_it_sees(
    client: TestClient,
) -> None:
    tag = uuid4().hex[:10]
    own = create(client, "rep-1", customer=customer(name=f"{tag} own"))["customer"]["uscc"]
    other = create(client, "rep-2", customer=customer(name=f"{tag} other"))["customer"]["uscc"]
    pooled = create(client, "manager-east", customer=customer(name=f"{tag} pool"))["customer"]
    west = create(client, "rep-3", customer=customer(name=f"{tag} west"))["customer"]["uscc"]

    def seen(principal: str) -> set[str]:
        return set(usccs(listed(client, principal, name=tag)))

    assert seen("rep-1") == {own, pooled["uscc"]}
    assert seen("rep-2") == {other, pooled["uscc"]}
    assert seen("rep-3") == {west}
    assert seen("manager-east") == {own, other, pooled["uscc"]}
    assert seen("manager-west") == {west}
    assert seen("viewer") == seen("admin") == {own, other, pooled["uscc"], west}


# -- key persons in the opportunity -------------------------------------------------------------


def test_the_opportunity_state_carries_its_customers_key_persons(client: TestClient) -> None:
    created = create(client)
    assert created["customer"]["key_persons"] == []
    uscc, oid = created["customer"]["uscc"], created["id"]
    add(client, uscc, CEO)

    got = client.get(f"/opportunities/{oid}", headers=auth("rep-1")).json()
    advanced = act(client, oid, "advance", {"to_stage": "requirements"})

    for state in (got, advanced):
        (person,) = state["customer"]["key_persons"]
        assert (person["id"], person["name"], person["role"]) == ("1", "王总", "decision_maker")
    # The listing keeps the opportunity's own state (key persons change on the customer).
    (item,) = client.get("/opportunities", params={"uscc": uscc}, headers=auth("rep-1")).json()[
        "items"
    ]
    assert item["id"] == oid


def test_a_key_person_added_to_an_opportunity_joins_its_customer(client: TestClient) -> None:
    created = create(client)
    oid, uscc = created["id"], created["customer"]["uscc"]

    named = act(client, oid, "key-persons", {"name": "王总", "role": "decision_maker"})
    free = act(
        client, oid, "key-persons", {"name": "Li", "role": "采购总监", "note": "prefers email"}
    )
    bare = act(client, oid, "key-persons", {"name": "Zhao"})

    # The opportunity records its own KeyPersonAdded as before.
    assert [p["role"] for p in bare["key_persons"]] == ["decision_maker", "采购总监", None]
    assert [p["person_id"] for p in bare["key_persons"]] == ["1", "2", "3"]
    assert named["version"] == 2
    assert free["version"] == 3
    people = shown(client, uscc)["key_persons"]
    assert [(p["id"], p["role"], p["note"]) for p in people] == [
        ("1", "decision_maker", None),
        ("2", "other", "role: 采购总监\nprefers email"),
        ("3", "other", None),
    ]
    assert bare["customer"]["key_persons"] == people
    added = [
        envelope["payload"]
        for envelope in customer_events(client, uscc)
        if envelope["event_type"] == "CustomerKeyPersonAdded"
    ]
    assert [payload["opportunity_id"] for payload in added] == [oid, oid, oid]
