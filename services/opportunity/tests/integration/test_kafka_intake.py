"""Lead intake as deployed (SPEC §3.3): qualified leads published with a plain aiokafka
producer to `crm.leads.qualified`, taken by an `oppstream serve opportunity` process on
SQLite and on PostgreSQL. Each lead creates at most one opportunity; duplicates and invalid
leads are answered on `crm.leads.rejected`; bytes that are no message are parked unchanged
on `crm.leads.qualified.dlq`, and the consumer goes on."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import orjson
import pytest

from contracts import topics
from contracts.leads import RejectedLead
from opportunity.domain.opportunity import Opportunity
from services.opportunity.tests.deployed import STORES, Deployed, deployed, won_opportunity
from tests.support.kafka import TestBroker
from tests.support.polling import wait_until
from tests.support.principals import auth, customer
from tests.support.topics import Outgoing, collect, end_offsets, keyed, publish, publish_json

pytestmark = pytest.mark.slow

TODAY = datetime.now(UTC).date()
DEADLINE = 30.0


@pytest.fixture(scope="module", params=STORES)
def intake(
    request: pytest.FixtureRequest, kafka: TestBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    """One service taking leads on a fresh store, shared by this module's tests."""
    workdir = tmp_path_factory.mktemp(f"intake-{request.param}")
    with deployed(
        request.param, kafka, workdir, "oppstream_intake", headers=auth("admin"), timeout=10.0
    ) as served:
        yield served


def lead(buyer: dict[str, str] | None = None, **changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "lead_id": f"lead-{uuid4()}",
        "qualified_at": datetime.now(UTC).isoformat(),
        "customer": buyer or customer(),
        "owner_id": "rep-1",
        "team_id": "east",
        "expected_amount": "50000.00",
        "currency": "CNY",
        "source": "web",
    }
    message.update(changes)
    return message


def opportunity_of(client: httpx.Client, lead_id: str) -> httpx.Response:
    return client.get(f"/opportunities/{Opportunity.new_id('lead', lead_id)}")


def created(intake: Deployed, lead_id: str) -> dict[str, Any]:
    """The lead's opportunity, once the service has taken the lead."""
    wait_until(
        lambda: opportunity_of(intake.client, lead_id).status_code == 200,
        DEADLINE,
        f"lead {lead_id} became an opportunity",
    )
    state: dict[str, Any] = opportunity_of(intake.client, lead_id).json()
    return state


def leads_taken(client: httpx.Client, outcome: str) -> float:
    text = client.get("/metrics").text
    found = re.search(
        rf'^oppstream_leads_total\{{outcome="{outcome}"\}} (\S+)$', text, re.MULTILINE
    )
    return float(found.group(1)) if found else 0.0


def by_uscc(client: httpx.Client, uscc: str, **filters: str) -> dict[str, Any]:
    answer = client.get("/opportunities", params={"uscc": uscc, **filters})
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def rejection(intake: Deployed, lead_id: str, start: dict[int, int]) -> RejectedLead:
    found = collect(intake.bootstrap, topics.LEADS_REJECTED, keyed(lead_id), 1, DEADLINE, start)
    assert len(found) == 1, found
    return RejectedLead.model_validate(found[0].json())


def test_a_lead_becomes_an_opportunity_with_its_fields(intake: Deployed) -> None:
    message = lead()
    publish_json(intake.bootstrap, topics.LEADS_QUALIFIED, message["lead_id"], message)
    state = created(intake, message["lead_id"])
    assert (state["type"], state["status"], state["stage"]) == ("new", "open", "initial_contact")
    assert (state["owner_id"], state["team_id"]) == ("rep-1", "east")
    assert state["customer"]["uscc"] == message["customer"]["uscc"]
    assert state["amount"] == "50000.00"
    assert state["lead_id"] == message["lead_id"]
    assert state["source"] == "web"


def test_a_redelivered_lead_creates_one_opportunity(intake: Deployed) -> None:
    message = lead()
    taken_before = leads_taken(intake.client, "taken_before")
    value = orjson.dumps(message)
    key = message["lead_id"].encode()
    publish(intake.bootstrap, topics.LEADS_QUALIFIED, [Outgoing(value, key), Outgoing(value, key)])
    state = created(intake, message["lead_id"])
    wait_until(
        lambda: leads_taken(intake.client, "taken_before") >= taken_before + 1,
        DEADLINE,
        "the redelivery was taken",
    )
    page = by_uscc(intake.client, message["customer"]["uscc"])
    assert page["total"] == 1, page
    assert page["items"][0]["id"] == state["id"]
    assert state["version"] == 1


def test_a_second_lead_for_the_same_customer_and_type_is_rejected_as_duplicate(
    intake: Deployed,
) -> None:
    buyer = customer()
    first = lead(buyer)
    publish_json(intake.bootstrap, topics.LEADS_QUALIFIED, first["lead_id"], first)
    existing = created(intake, first["lead_id"])

    start = end_offsets(intake.bootstrap, topics.LEADS_REJECTED)
    second = lead(buyer)
    publish_json(intake.bootstrap, topics.LEADS_QUALIFIED, second["lead_id"], second)
    answer = rejection(intake, second["lead_id"], start)
    assert answer.reason == "duplicate"
    assert answer.existing_opportunity_id == existing["id"]
    assert opportunity_of(intake.client, second["lead_id"]).status_code == 404
    assert by_uscc(intake.client, buyer["uscc"])["total"] == 1


def test_a_lead_with_an_invalid_uscc_is_rejected_naming_uscc(intake: Deployed) -> None:
    buyer = customer()
    last = buyer["uscc"][-1]
    buyer["uscc"] = buyer["uscc"][:-1] + ("0" if last != "0" else "1")  # wrong check character
    message = lead(buyer)
    start = end_offsets(intake.bootstrap, topics.LEADS_REJECTED)
    publish_json(intake.bootstrap, topics.LEADS_QUALIFIED, message["lead_id"], message)
    answer = rejection(intake, message["lead_id"], start)
    assert answer.reason == "invalid"
    assert "uscc" in answer.detail
    assert answer.existing_opportunity_id is None
    assert opportunity_of(intake.client, message["lead_id"]).status_code == 404


def test_a_lead_without_a_tier_is_classified(intake: Deployed) -> None:
    buyer: dict[str, Any] = {**customer(), "annual_revenue": "2000000000.00"}
    del buyer["tier"]
    message = lead(buyer)
    publish_json(intake.bootstrap, topics.LEADS_QUALIFIED, message["lead_id"], message)
    state = created(intake, message["lead_id"])
    assert (state["customer"]["tier"], state["customer"]["classified_by"]) == ("KA", "ka-revenue")


def test_a_lead_no_classification_rule_holds_for_is_rejected_naming_customer_tier(
    intake: Deployed,
) -> None:
    buyer: dict[str, Any] = customer(industry="banking")
    del buyer["tier"]
    message = lead(buyer)
    start = end_offsets(intake.bootstrap, topics.LEADS_REJECTED)
    publish_json(intake.bootstrap, topics.LEADS_QUALIFIED, message["lead_id"], message)
    answer = rejection(intake, message["lead_id"], start)
    assert answer.reason == "invalid"
    assert answer.detail.startswith("customer.tier: no tier was given")
    assert "industry=banking" in answer.detail
    assert opportunity_of(intake.client, message["lead_id"]).status_code == 404
    assert by_uscc(intake.client, buyer["uscc"])["total"] == 0


def test_poison_goes_to_the_dlq_unchanged_and_the_next_lead_is_taken(intake: Deployed) -> None:
    message = lead()
    key = message["lead_id"].encode()  # one key: one partition, so the lead comes after
    garbage = b"\xff\xfe\x00 this is not JSON {"
    not_an_object = b"[1, 2, 3]"
    start = end_offsets(intake.bootstrap, topics.LEADS_QUALIFIED_DLQ)
    publish(
        intake.bootstrap,
        topics.LEADS_QUALIFIED,
        [
            Outgoing(garbage, key, {"trace": b"t-1"}),
            Outgoing(not_an_object, key),
            Outgoing(orjson.dumps(message), key),
        ],
    )
    created(intake, message["lead_id"])
    parked = collect(
        intake.bootstrap, topics.LEADS_QUALIFIED_DLQ, keyed(message["lead_id"]), 2, DEADLINE, start
    )
    assert [r.value for r in parked] == [garbage, not_an_object]
    for record in parked:
        assert record.header("x-error"), record.headers
        assert record.header("x-source-topic") == topics.LEADS_QUALIFIED.encode()


def test_a_lead_of_a_customer_with_a_running_contract_becomes_a_resale(intake: Deployed) -> None:
    buyer = customer()
    won = won_opportunity(intake.client, buyer, ends_on=TODAY + timedelta(days=365))
    message = lead(buyer)
    publish_json(intake.bootstrap, topics.LEADS_QUALIFIED, message["lead_id"], message)
    state = created(intake, message["lead_id"])
    assert state["type"] == "resale"
    assert state["pipeline_id"] == "resale"
    assert state["id"] != won["id"]


def test_a_lead_of_a_customer_whose_contract_ended_is_new(intake: Deployed) -> None:
    buyer = customer()
    won_opportunity(
        intake.client,
        buyer,
        starts_on=TODAY - timedelta(days=400),
        ends_on=TODAY - timedelta(days=35),
    )
    message = lead(buyer)
    publish_json(intake.bootstrap, topics.LEADS_QUALIFIED, message["lead_id"], message)
    assert created(intake, message["lead_id"])["type"] == "new"


def test_two_leads_of_one_customer_arriving_together_make_one_opportunity(
    intake: Deployed,
) -> None:
    buyer = customer()
    pair = [lead(buyer), lead(buyer)]
    lead_ids = [m["lead_id"] for m in pair]
    start = end_offsets(intake.bootstrap, topics.LEADS_REJECTED)
    publish(
        intake.bootstrap,
        topics.LEADS_QUALIFIED,
        [Outgoing(orjson.dumps(m), m["lead_id"].encode()) for m in pair],
    )
    answers = collect(intake.bootstrap, topics.LEADS_REJECTED, keyed(*lead_ids), 1, DEADLINE, start)
    assert len(answers) == 1, answers
    rejected = RejectedLead.model_validate(answers[0].json())
    taken = next(i for i in lead_ids if i != rejected.lead_id)
    assert rejected.reason == "duplicate"
    assert rejected.existing_opportunity_id == created(intake, taken)["id"]
    assert opportunity_of(intake.client, rejected.lead_id).status_code == 404
    assert by_uscc(intake.client, buyer["uscc"])["total"] == 1


def test_a_burst_of_leads_with_redeliveries_creates_each_opportunity_once(
    intake: Deployed,
) -> None:
    burst = [lead() for _ in range(100)]
    records = [Outgoing(orjson.dumps(m), m["lead_id"].encode()) for m in burst]
    taken_before = leads_taken(intake.client, "taken_before")
    publish(intake.bootstrap, topics.LEADS_QUALIFIED, [*records, *records[::5]])
    wait_until(
        lambda: leads_taken(intake.client, "taken_before") >= taken_before + 20,
        DEADLINE,
        "the 20 redeliveries were taken",
    )
    for message in burst:
        state = created(intake, message["lead_id"])
        assert state["version"] == 1
        page = by_uscc(intake.client, message["customer"]["uscc"])
        assert [item["id"] for item in page["items"]] == [state["id"]]
