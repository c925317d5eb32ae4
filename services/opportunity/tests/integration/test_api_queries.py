"""Queries: one opportunity, its history, the paged list and who sees what, pipelines, the
notification feed, the schedule fields, and the operations endpoints."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from opportunity.domain.customer_record import CustomerRecord
from services.opportunity.tests.api_calls import act, create, to_signing, won_contract
from tests.support.principals import auth, customer

TODAY = datetime.now(UTC).date()


def listed(client: TestClient, principal: str = "admin", **params: Any) -> dict[str, Any]:
    answer = client.get("/opportunities", params=params, headers=auth(principal))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def ids_of(page: dict[str, Any]) -> set[str]:
    return {item["id"] for item in page["items"]}


# -- one opportunity and its history ---------------------------------------------------------


def test_get_answers_the_state_with_its_version_as_etag(client: TestClient) -> None:
    oid = create(client)["id"]
    act(client, oid, "advance", {"to_stage": "requirements"})

    answer = client.get(f"/opportunities/{oid}", headers=auth("rep-1"))

    assert answer.status_code == 200
    assert answer.headers["ETag"] == '"2"'
    assert (answer.json()["version"], answer.json()["stage"]) == (2, "requirements")


def test_history_lists_envelopes_in_version_order(client: TestClient) -> None:
    oid = create(client)["id"]
    act(client, oid, "advance", {"to_stage": "requirements"})
    act(client, oid, "follow-ups", {"kind": "call", "note": "n"})
    act(client, oid, "pause", {"reason": "holiday"})
    act(client, oid, "resume")

    answer = client.get(f"/opportunities/{oid}/history", headers=auth("rep-1"))

    assert answer.status_code == 200
    body = answer.json()
    assert body["opportunity_id"] == oid
    events = body["events"]
    assert [e["event_type"] for e in events] == [
        "OpportunityCreated",
        "StageAdvanced",
        "FollowUpLogged",
        "OpportunityPaused",
        "OpportunityResumed",
    ]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    assert {e["opportunity_id"] for e in events} == {oid}
    assert len({e["event_id"] for e in events}) == 5
    assert {e["actor"] for e in events} == {"rep-1"}
    assert all(e["schema_version"] == 1 for e in events)
    assert events[0]["payload"]["customer"]["uscc"]
    assert events[1]["payload"]["from_stage"] == "initial_contact"
    assert events[1]["payload"]["to_stage"] == "requirements"


def test_a_rep_may_not_read_another_reps_opportunity_or_its_history(client: TestClient) -> None:
    oid = create(client, principal="rep-1")["id"]

    assert client.get(f"/opportunities/{oid}", headers=auth("rep-2")).status_code == 403
    assert client.get(f"/opportunities/{oid}/history", headers=auth("rep-2")).status_code == 403
    assert client.get(f"/opportunities/{oid}", headers=auth("manager-west")).status_code == 403
    assert client.get(f"/opportunities/{oid}", headers=auth("manager-east")).status_code == 200
    assert client.get(f"/opportunities/{oid}", headers=auth("viewer")).status_code == 200


# -- the list ----------------------------------------------------------------------------------


def test_the_list_filters_by_each_field(client: TestClient) -> None:
    shared = customer()
    # An ended contract: `new`, `renewal` and `resale` all fit the customer's history.
    won = won_contract(client, shared, running=False)
    new = create(client, "rep-1", customer=shared)
    act(client, new["id"], "advance", {"to_stage": "requirements"})
    renewal = create(client, "rep-2", type="renewal", customer=shared)
    act(client, renewal["id"], "pause", {"reason": "holiday"}, "rep-2")
    resale = create(client, "manager-east", type="resale", customer=shared)
    uscc = shared["uscc"]

    assert ids_of(listed(client, uscc=uscc)) == {won, new["id"], renewal["id"], resale["id"]}
    assert ids_of(listed(client, uscc=uscc, type="renewal")) == {renewal["id"]}
    assert ids_of(listed(client, uscc=uscc, owner_id="rep-1")) == {won, new["id"]}
    assert ids_of(listed(client, uscc=uscc, status="paused")) == {renewal["id"]}
    assert ids_of(listed(client, uscc=uscc, status="pooled")) == {resale["id"]}
    assert ids_of(listed(client, uscc=uscc, stage="requirements")) == {new["id"]}
    assert ids_of(listed(client, uscc=uscc, stage="initial_contact", type="resale")) == {
        resale["id"]
    }
    assert listed(client, uscc=uscc, team_id="east")["total"] == 4
    assert listed(client, uscc=uscc, team_id="west")["total"] == 0
    assert listed(client, uscc=customer()["uscc"])["total"] == 0


def test_the_list_shows_each_opportunitys_current_state(client: TestClient) -> None:
    created = create(client)
    act(client, created["id"], "advance", {"to_stage": "requirements"})

    (item,) = listed(client, uscc=created["customer"]["uscc"])["items"]

    assert (item["version"], item["stage"]) == (2, "requirements")
    assert item["reclaim_at"] is not None
    assert item["next_reminder_at"] is not None


def test_the_list_pages_with_limit_and_offset(client: TestClient) -> None:
    shared = customer()
    ids = {won_contract(client, shared, running=False)} | {
        create(client, customer=shared, type=kind)["id"] for kind in ("new", "renewal")
    }
    uscc = shared["uscc"]

    first = listed(client, uscc=uscc, limit=2, offset=0)
    second = listed(client, uscc=uscc, limit=2, offset=2)

    assert (first["total"], first["limit"], first["offset"], len(first["items"])) == (3, 2, 0, 2)
    assert (second["total"], second["offset"], len(second["items"])) == (3, 2, 1)
    assert ids_of(first) | ids_of(second) == ids
    assert listed(client, uscc=uscc, limit=2, offset=3)["items"] == []


@pytest.mark.parametrize(("param", "value"), [("limit", 0), ("limit", 501), ("offset", -1)])
def test_the_list_refuses_paging_out_of_range(client: TestClient, param: str, value: int) -> None:
    answer = client.get("/opportunities", params={param: value}, headers=auth("admin"))

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", param]


def test_each_role_sees_what_it_may_in_the_list(client: TestClient) -> None:
    own = create(client, "rep-1")
    colleagues = create(client, "rep-2")
    east_pool = create(client, "manager-east")
    west = create(client, "rep-3")
    west_pool = create(client, "manager-west")
    everything = [own, colleagues, east_pool, west, west_pool]

    def visible(principal: str) -> set[str]:
        found: set[str] = set()
        for o in everything:
            found |= ids_of(listed(client, principal, uscc=o["customer"]["uscc"]))
        return found

    assert visible("rep-1") == {own["id"], east_pool["id"]}
    assert visible("rep-3") == {west["id"], west_pool["id"]}
    assert visible("manager-east") == {own["id"], colleagues["id"], east_pool["id"]}
    assert visible("viewer") == {o["id"] for o in everything}
    assert visible("admin") == {o["id"] for o in everything}


def test_a_rep_stops_seeing_an_opportunity_once_it_is_reclaimed_and_claimed_by_a_colleague(
    client: TestClient,
) -> None:
    created = create(client, "rep-1")
    uscc = created["customer"]["uscc"]
    act(client, created["id"], "reclaim", {"reason": "no progress"}, "manager-east")
    assert listed(client, "rep-2", uscc=uscc)["total"] == 1

    act(client, created["id"], "claim", {}, "rep-2")

    assert listed(client, "rep-1", uscc=uscc)["total"] == 0
    assert ids_of(listed(client, "rep-2", uscc=uscc)) == {created["id"]}


# -- pipelines -----------------------------------------------------------------------------------


def test_pipelines_lists_the_three_default_pipelines_with_stage_details(client: TestClient) -> None:
    answer = client.get("/pipelines", headers=auth("viewer"))

    assert answer.status_code == 200
    pipelines = {p["type"]: p for p in answer.json()["pipelines"]}
    assert set(pipelines) == {"new", "renewal", "resale"}
    stages = {kind: [s["id"] for s in p["stages"]] for kind, p in pipelines.items()}
    assert stages["new"] == [
        "initial_contact",
        "requirements",
        "proposal",
        "negotiation",
        "signing",
    ]
    assert stages["resale"] == stages["new"]
    assert stages["renewal"] == ["initial_contact", "proposal", "negotiation", "signing"]
    for pipeline in pipelines.values():
        for stage in pipeline["stages"]:
            assert stage["label"]
            assert 0 <= stage["probability"] <= 1
            assert stage["forecast_category"] in {"pipeline", "best_case", "commit"}
            assert stage["guidance"]
    assert pipelines["new"]["stages"][-1]["forecast_category"] == "commit"
    assert pipelines["new"]["stages"][0]["probability"] == 0.1
    assert pipelines["new"]["stages"][0]["label"] == "初次洽谈 Initial contact"
    assert pipelines["renewal"]["tier"] is None


def test_pipelines_lists_the_lost_reasons(client: TestClient) -> None:
    reasons = client.get("/pipelines", headers=auth("rep-1")).json()["lost_reasons"]

    assert {"price", "competitor", "no_budget", "other"} <= {r["id"] for r in reasons}
    assert all(r["label"] for r in reasons)


# -- the notification feed -----------------------------------------------------------------------


def last_position(client: TestClient) -> int:
    return int(client.get("/readyz").json()["last_position"])


def record_id(state: dict[str, Any]) -> str:
    """The id the opportunity's customer record travels under."""
    return str(CustomerRecord.create_id(state["customer"]["uscc"]))


def test_notifications_are_refused_to_reps_managers_and_viewers(client: TestClient) -> None:
    for principal in ("rep-1", "manager-east", "viewer"):
        answer = client.get("/notifications", headers=auth(principal))
        assert answer.status_code == 403, principal
        assert answer.json()["detail"]["rule"] == "role.notifications"


@pytest.mark.parametrize("principal", ["service", "admin"])
def test_notifications_list_events_in_recording_order(client: TestClient, principal: str) -> None:
    start = last_position(client)
    first = create(client)
    second = create(client)
    act(client, first["id"], "advance", {"to_stage": "requirements"})

    answer = client.get("/notifications", params={"after": start}, headers=auth(principal))

    assert answer.status_code == 200
    items = answer.json()["items"]
    assert [(i["envelope"]["opportunity_id"], i["envelope"]["event_type"]) for i in items] == [
        (first["id"], "OpportunityCreated"),
        (record_id(first), "CustomerRecorded"),
        (second["id"], "OpportunityCreated"),
        (record_id(second), "CustomerRecorded"),
        (first["id"], "StageAdvanced"),
    ]
    positions = [i["position"] for i in items]
    assert positions == sorted(positions)
    assert len(set(positions)) == 5
    assert all(p > start for p in positions)
    assert answer.json()["next_after"] == positions[-1]
    assert items[4]["envelope"]["version"] == 2


def test_notifications_page_with_after_and_limit(client: TestClient) -> None:
    start = last_position(client)
    created = create(client)
    oid = created["id"]
    for kind in ("call", "visit", "email"):
        act(client, oid, "follow-ups", {"kind": kind, "note": kind})

    first = client.get(
        "/notifications", params={"after": start, "limit": 2}, headers=auth("service")
    )
    rest = client.get(
        "/notifications", params={"after": first.json()["next_after"]}, headers=auth("service")
    )

    def versions(page: Any) -> list[tuple[str, int]]:
        return [(i["envelope"]["opportunity_id"], i["envelope"]["version"]) for i in page["items"]]

    assert versions(first.json()) == [(oid, 1), (record_id(created), 1)]
    assert versions(rest.json()) == [(oid, 2), (oid, 3), (oid, 4)]
    end = rest.json()["next_after"]
    after_end = client.get("/notifications", params={"after": end}, headers=auth("service")).json()
    assert (after_end["items"], after_end["next_after"]) == ([], end)


# -- schedule fields -----------------------------------------------------------------------------


def test_an_open_ka_opportunity_is_reclaimed_30_days_after_its_last_progress(
    client: TestClient,
) -> None:
    state = create(client, customer=customer(tier="KA"))

    progress = datetime.fromisoformat(state["last_progress_at"])
    assert datetime.fromisoformat(state["reclaim_at"]) == progress + timedelta(days=30)
    assert datetime.fromisoformat(state["next_reminder_at"]) == progress + timedelta(days=7)


def test_an_open_smb_opportunity_is_reclaimed_14_days_after_its_last_progress(
    client: TestClient,
) -> None:
    state = create(client, customer=customer(tier="SMB"))

    progress = datetime.fromisoformat(state["last_progress_at"])
    assert datetime.fromisoformat(state["reclaim_at"]) == progress + timedelta(days=14)
    assert datetime.fromisoformat(state["next_reminder_at"]) == progress + timedelta(days=3)


def test_a_follow_up_moves_reclaim_at(client: TestClient) -> None:
    imported = create(
        client,
        "service",
        owner_id="rep-1",
        team_id="east",
        occurred_at=(datetime.now(UTC) - timedelta(days=20)).isoformat(),
    )
    before = datetime.fromisoformat(imported["reclaim_at"])

    after = act(client, imported["id"], "follow-ups", {"kind": "call", "note": "n"})

    assert datetime.fromisoformat(after["reclaim_at"]) >= before + timedelta(days=20)
    assert datetime.fromisoformat(after["reclaim_at"]) == datetime.fromisoformat(
        after["last_progress_at"]
    ) + timedelta(days=30)


def test_a_paused_opportunity_has_no_reclaim_at_and_is_reminded_when_the_pause_ends(
    client: TestClient,
) -> None:
    oid = create(client)["id"]
    until = TODAY + timedelta(days=10)

    state = act(client, oid, "pause", {"reason": "holiday", "until": until.isoformat()})

    assert state["reclaim_at"] is None
    shanghai_midnight = datetime(
        until.year, until.month, until.day, tzinfo=ZoneInfo("Asia/Shanghai")
    )
    assert datetime.fromisoformat(state["next_reminder_at"]) == shanghai_midnight
    read = client.get(f"/opportunities/{oid}", headers=auth("rep-1")).json()
    assert read["reclaim_at"] is None


@pytest.mark.parametrize(
    ("command", "body"),
    [("lose", {"reason": "no_budget"}), ("void", {"reason": "duplicate"}), ("win", None)],
)
def test_a_closed_opportunity_has_no_reclaim_at(
    client: TestClient, command: str, body: dict[str, Any] | None
) -> None:
    oid = create(client)["id"]
    if command == "win":
        to_signing(client, oid)
        body = {"amount": "1", "contract_ref": "C"}

    state = act(client, oid, command, body)

    assert state["reclaim_at"] is None
    assert state["next_reminder_at"] is None
    assert client.get(f"/opportunities/{oid}", headers=auth("rep-1")).json()["reclaim_at"] is None


# -- operations ----------------------------------------------------------------------------------


def test_healthz_and_readyz_answer_without_a_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_metrics_count_commands_in_prometheus_text(client: TestClient) -> None:
    create(client)
    client.post("/opportunities", json={"type": "new"}, headers=auth("rep-1"))

    answer = client.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'oppstream_commands_total{command="create",status="201"} 1.0' in answer.text
    assert "oppstream_command_seconds_bucket" in answer.text
    assert "oppstream_group_commit_batch_size" in answer.text


def test_the_openapi_document_and_docs_page_answer(client: TestClient) -> None:
    spec = client.get("/openapi.json")
    docs = client.get("/docs")

    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {
        "/opportunities",
        "/opportunities/{opportunity_id}",
        "/pipelines",
        "/notifications",
    } <= set(paths)
    assert "patch" in paths["/opportunities/{opportunity_id}"]
    assert "post" in paths["/opportunities/{opportunity_id}/advance"]
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
