"""Targets over HTTP (SPEC §9.1): set, allocated and adjusted, each change an event on the feed;
every refusal naming the field or the rule with nothing recorded; the targets as they stood at
an instant, a team's allocation to its reps, and who sees which target.

Each test uses a year of its own, so the PostgreSQL database the tests share holds no target of
another test's period."""

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.envelope import Envelope
from contracts.targets import TARGET_PAYLOADS, target_id_for
from tests.support.principals import auth


@pytest.fixture
def year() -> str:
    return str(random.randint(2100, 9999))


def put(
    client: TestClient,
    path: str,
    value: object,
    principal: str = "admin",
    metric: str = "won_amount",
    **extra: object,
) -> Any:
    body = {"metric": metric, "value": value, **extra}
    return client.put(f"/targets/{path}", json=body, headers=auth(principal))


def set_ok(
    client: TestClient, path: str, value: object, principal: str = "admin", **extra: object
) -> dict[str, Any]:
    answer = put(client, path, value, principal, **extra)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def targets(client: TestClient, principal: str = "admin", **params: str) -> dict[str, Any]:
    answer = client.get("/targets", params=params, headers=auth(principal))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def by_scope_id(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["scope_id"]: t for t in found["targets"]}


def recorded(client: TestClient) -> int:
    """The event store's last position: how much was ever recorded."""
    return int(client.app.state.api.app.last_position())  # type: ignore[attr-defined]


def feed_after(client: TestClient, after: int) -> list[dict[str, Any]]:
    answer = client.get(
        "/notifications", params={"after": after, "limit": 1000}, headers=auth("service")
    )
    return [item["envelope"] for item in answer.json()["items"]]


# -- set, allocated, adjusted ------------------------------------------------------------------


def test_a_teams_target_is_set_then_adjusted_with_its_history(
    client: TestClient, year: str
) -> None:
    first = put(client, f"{year}-Q4/team/east", "100000", reason="the plan")
    assert first.status_code == 201, first.text
    created = first.json()
    assert {k: created[k] for k in ("period", "scope", "scope_id", "metric", "value")} == {
        "period": f"{year}-Q4",
        "scope": "team",
        "scope_id": "east",
        "metric": "won_amount",
        "value": "100000",
    }
    assert (created["team_id"], created["version"]) == (None, 1)
    [set_] = created["history"]
    assert {k: set_[k] for k in ("event_type", "value", "previous_value", "reason", "actor")} == {
        "event_type": "TargetSet",
        "value": "100000",
        "previous_value": None,
        "reason": "the plan",
        "actor": "admin",
    }

    adjusted = put(client, f"{year}-Q4/team/east", 120000, "manager-east", reason="bigger")
    assert adjusted.status_code == 200, adjusted.text
    body = adjusted.json()
    assert (body["value"], body["version"]) == ("120000", 2)
    assert [
        (h["event_type"], h["value"], h["previous_value"], h["actor"]) for h in body["history"]
    ] == [
        ("TargetSet", "100000", None, "admin"),
        ("TargetAdjusted", "120000", "100000", "manager-east"),
    ]


def test_a_reps_target_is_allocated_from_the_reps_team(client: TestClient, year: str) -> None:
    answer = put(client, f"{year}-12/rep/rep-1", 5, "manager-east", metric="won_count")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["team_id"], body["history"][0]["event_type"]) == ("east", "TargetAllocated")


def test_the_same_value_again_records_nothing_and_answers_the_target(
    client: TestClient, year: str
) -> None:
    set_ok(client, f"{year}/company/acme", "1000000.00")
    before = recorded(client)
    again = put(client, f"{year}/company/acme", 1000000, reason="unchanged")
    assert again.status_code == 200, again.text
    assert (again.json()["value"], again.json()["version"]) == ("1000000.00", 1)
    assert recorded(client) == before


def test_every_change_is_an_event_on_the_feed_with_the_whole_key(
    client: TestClient, year: str
) -> None:
    start = recorded(client)
    set_ok(client, f"{year}-Q1/team/west", 10, metric="new_opportunities")
    set_ok(client, f"{year}-Q1/rep/rep-3", 4, metric="new_opportunities")
    set_ok(client, f"{year}-Q1/rep/rep-3", 6, "manager-west", metric="new_opportunities")
    envelopes = [Envelope.model_validate(e) for e in feed_after(client, start)]
    assert [e.event_type for e in envelopes] == ["TargetSet", "TargetAllocated", "TargetAdjusted"]
    for envelope in envelopes:
        change = TARGET_PAYLOADS[envelope.event_type].model_validate(envelope.payload)
        assert envelope.opportunity_id == target_id_for(
            change.period, change.scope, change.scope_id, change.metric
        )
    adjusted = TARGET_PAYLOADS["TargetAdjusted"].model_validate(envelopes[-1].payload)
    assert (adjusted.value, adjusted.previous_value, adjusted.team_id) == (6, 4, "west")
    assert envelopes[-1].actor == "manager-west"


# -- refusals ------------------------------------------------------------------------------------

REFUSED = [
    # (path after the year, body changes, principal, status, where, field or rule)
    ("-Q5/team/east", {}, "admin", 422, "path", "period"),
    ("-13/team/east", {}, "admin", 422, "path", "period"),
    ("/region/east", {}, "admin", 422, "path", "scope"),
    ("/rep/ghost", {}, "admin", 422, "path", "scope_id"),
    ("/rep/manager-east", {}, "admin", 422, "path", "scope_id"),
    ("/team/north", {}, "admin", 422, "path", "scope_id"),
    ("/team/east", {"value": -1}, "admin", 422, "body", "value"),
    ("/team/east", {"value": "lots"}, "admin", 422, "body", "value"),
    ("/team/east", {"metric": "revenue"}, "admin", 422, "body", "metric"),
    ("/company/acme", {}, "manager-east", 403, "rule", "role.company"),
    ("/team/west", {}, "manager-east", 403, "rule", "role.team"),
    ("/rep/rep-3", {}, "manager-east", 403, "rule", "role.team"),
    ("/team/east", {}, "rep-1", 403, "rule", "role.targets"),
    ("/rep/rep-1", {}, "rep-1", 403, "rule", "role.targets"),
    ("/team/east", {}, "viewer", 403, "rule", "role.targets"),
    ("/team/east", {}, "service", 403, "rule", "role.targets"),
]


def test_every_refusal_names_the_field_or_rule_and_records_nothing(
    client: TestClient, year: str, subtests: pytest.Subtests
) -> None:
    for path, changes, principal, status, where, name in REFUSED:
        with subtests.test(path=path, changes=changes, principal=principal):
            before = recorded(client)
            body = {"metric": "won_amount", "value": 10, **changes}
            answer = client.put(f"/targets/{year}{path}", json=body, headers=auth(principal))
            assert answer.status_code == status, answer.text
            detail = answer.json()["detail"]
            if where == "rule":
                assert detail["rule"] == name
            else:
                assert detail[0]["loc"] == [where, name]
            assert recorded(client) == before
    assert targets(client, period=year)["targets"] == []


def test_a_bad_period_in_a_query_is_refused_naming_it(client: TestClient) -> None:
    answer = client.get("/targets", params={"period": "2026-Q9"}, headers=auth("admin"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", "period"]


# -- as of an instant ---------------------------------------------------------------------------


def test_the_targets_as_they_stood_before_and_after_an_adjustment(
    client: TestClient, year: str
) -> None:
    first = set_ok(client, f"{year}-Q2/team/east", 1000)
    set_at = datetime.fromisoformat(first["history"][0]["occurred_at"])
    adjusted = set_ok(client, f"{year}-Q2/team/east", 1500, "manager-east", reason="more")
    adjusted_at = datetime.fromisoformat(adjusted["history"][1]["occurred_at"])
    assert set_at < adjusted_at
    period = f"{year}-Q2"

    assert (
        targets(client, period=period, as_of=(set_at - timedelta(seconds=1)).isoformat())["targets"]
        == []
    )
    then = targets(client, period=period, as_of=set_at.isoformat())
    assert then["as_of"] == set_at.isoformat()
    [before] = then["targets"]
    assert (before["value"], len(before["history"]), before["set_at"]) == (
        "1000",
        1,
        set_at.isoformat(),
    )
    [after] = targets(client, period=period, as_of=adjusted_at.isoformat())["targets"]
    assert (after["value"], after["set_at"]) == ("1500", adjusted_at.isoformat())
    assert [h["value"] for h in after["history"]] == ["1000", "1500"]
    [now] = targets(client, period=period)["targets"]
    assert now == after


def test_a_teams_allocation_is_the_sum_of_its_reps_targets_as_of_then(
    client: TestClient, year: str
) -> None:
    period = f"{year}-Q3"
    set_ok(client, f"{period}/team/east", 1000)
    first = set_ok(client, f"{period}/rep/rep-1", 400, "manager-east")
    allocated_at = first["history"][0]["occurred_at"]
    set_ok(client, f"{period}/rep/rep-2", 700, "manager-east")
    # Not the team's: another team's rep, another metric, another period.
    set_ok(client, f"{period}/rep/rep-3", 999)
    set_ok(client, f"{period}/rep/rep-1", 50, metric="won_count")
    set_ok(client, f"{year}-Q4/rep/rep-1", 80)

    east = by_scope_id(targets(client, period=period, scope="team"))["east"]
    assert (east["allocated"], east["unallocated"]) == ("1100", "-100")
    then = by_scope_id(targets(client, period=period, scope="team", as_of=allocated_at))["east"]
    assert (then["allocated"], then["unallocated"]) == ("400", "600")
    reps = by_scope_id(targets(client, period=period, scope="rep"))
    assert "allocated" not in reps["rep-1"]


# -- who sees what -------------------------------------------------------------------------------


def test_managers_and_reps_see_their_own_their_teams_and_the_companys(
    client: TestClient, year: str
) -> None:
    period = f"{year}-06"
    for path in ("company/acme", "team/east", "team/west", "rep/rep-1", "rep/rep-2", "rep/rep-3"):
        set_ok(client, f"{period}/{path}", 10)

    def seen(principal: str) -> set[str]:
        return {t["scope_id"] for t in targets(client, principal, period=period)["targets"]}

    everything = {"acme", "east", "west", "rep-1", "rep-2", "rep-3"}
    assert seen("admin") == seen("viewer") == seen("service") == everything
    assert seen("manager-east") == {"acme", "east", "rep-1", "rep-2"}
    assert seen("manager-west") == {"acme", "west", "rep-3"}
    assert seen("rep-1") == {"acme", "east", "rep-1"}
    assert seen("rep-3") == {"acme", "west", "rep-3"}
