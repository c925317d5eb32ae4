"""The inbox and the deliveries over HTTP, with the service's own delivery worker and a
local sink, on SQLite and PostgreSQL: a sink that never answers gets the delivery parked
after the configured attempts, visible at /deliveries and in /metrics, and a retry sends it
again; the inbox's filters and who may read what."""

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.rules import Rulebook
from reminders.adapters.store import Store
from reminders.main import build_app
from reminders.settings import Settings
from services.reminders.tests.delivery_support import (
    a_follow_up_fired,
    harness_on,
    webhook,
    with_delivery,
)
from services.reminders.tests.helpers import DAY, T0, Opportunity
from services.reminders.tests.sink import HANG, Sink, running_sink
from tests.support.polling import poll
from tests.support.principals import PRINCIPALS, auth


def _client(store: Store, rules: Rulebook) -> TestClient:
    app = build_app(
        Settings(reminders_db_url=store.url, reminders_tick_ms=50),
        rules=rules,
        principals=PRINCIPALS,
    )
    return TestClient(app)


def _parked(client: TestClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        "/deliveries", params={"status": "parked"}, headers=auth("admin")
    ).json()["deliveries"]
    return found


async def test_a_sink_that_never_answers_gets_it_parked_then_a_retry_sends_it_again(
    store: Store, rules: Rulebook
) -> None:
    with running_sink() as sink:
        sink.after["/mute"] = HANG
        rules = with_delivery(rules, webhook("mute", sink.url("/mute")), attempts=2, timeout="0.3s")
        reminder_id = await a_follow_up_fired(harness_on(store, rules), team_id="east")
        with _client(store, rules) as client:
            [parked] = poll(lambda: _parked(client), deadline=20)
            assert (parked["reminder_id"], parked["channel_id"]) == (reminder_id, "mute")
            assert parked["attempts"] == 2
            assert parked["last_error"] == "no answer (TimeoutError)"
            assert len(sink.at("/mute")) == 2
            assert "oppstream_deliveries_parked 1.0" in client.get("/metrics").text
            assert 'oppstream_deliveries_total{channel="mute",outcome="parked"} 1.0' in (
                client.get("/metrics").text
            )

            retry = f"/deliveries/{parked['delivery_id']}/retry"
            for who in ("rep-1", "manager-west", "viewer"):
                assert client.post(retry, headers=auth(who)).status_code == 403
            sink.after["/mute"] = 200
            answer = client.post(retry, headers=auth("manager-east"))
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] in ("pending", "delivered")
            poll(
                lambda: client.get(
                    "/deliveries", params={"status": "delivered"}, headers=auth("admin")
                ).json()["deliveries"],
                deadline=20,
            )
            assert [r.headers["Idempotency-Key"] for r in sink.at("/mute")][-1] == reminder_id
            assert _parked(client) == []
            assert "oppstream_deliveries_parked 0.0" in client.get("/metrics").text

            again = client.post(retry, headers=auth("admin"))
            assert again.status_code == 409
            assert again.json()["detail"]["status"] == "delivered"
            assert "delivered" in again.json()["detail"]["message"]
            missing = client.post("/deliveries/nope/retry", headers=auth("admin"))
            assert missing.status_code == 404


async def _inbox_fired(store: Store, rules: Rulebook) -> dict[str, Opportunity]:
    """rep-1 and rep-2 (east) and rep-3 (west): a follow-up each at T0+7d, a stale warning
    each at T0+14d."""
    harness = harness_on(store, rules)
    deals = {
        owner: Opportunity("KA", owner_id=owner, team_id=team)
        for owner, team in (("rep-1", "east"), ("rep-2", "east"), ("rep-3", "west"))
    }
    for deal in deals.values():
        harness.feed(deal.create(T0))
    assert len(await harness.at(T0 + 7 * DAY)) == 3
    assert len(await harness.at(T0 + 14 * DAY)) == 3
    return deals


@pytest.fixture
def inbox(store: Store, rules: Rulebook) -> Iterator[tuple[TestClient, dict[str, Opportunity]]]:
    with running_sink() as sink:
        rules = with_delivery(rules, _east_wecom(sink))
        deals = asyncio.run(_inbox_fired(store, rules))
        with _client(store, rules) as client:
            yield client, deals


def _east_wecom(sink: Sink) -> dict[str, Any]:
    return {
        "id": "east-wecom",
        "kind": "wecom",
        "url": sink.url("/wecom"),
        "match": {"team_id": "east"},
    }


def _reminders(client: TestClient, who: str, **params: Any) -> list[dict[str, Any]]:
    answer = client.get("/reminders", params=params, headers=auth(who))
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["reminders"]
    return found


Inbox = tuple[TestClient, dict[str, Opportunity]]


def test_a_rep_reads_their_own_reminders_newest_first_with_their_deliveries(inbox: Inbox) -> None:
    client, deals = inbox
    found = _reminders(client, "rep-1")
    assert [r["kind"] for r in found] == ["stale_warning", "follow_up"]
    assert {r["opportunity_id"] for r in found} == {deals["rep-1"].id}
    first = found[0]
    assert set(first) == {
        "reminder_id",
        "kind",
        "opportunity_id",
        "owner_id",
        "team_id",
        "rule_id",
        "due_at",
        "fired_at",
        "detail",
        "deliveries",
    }
    assert first["owner_id"] == "rep-1"
    assert first["team_id"] == "east"
    [delivery] = first["deliveries"]
    assert delivery["channel_id"] == "east-wecom"
    assert delivery["status"] in ("pending", "delivered")
    assert set(delivery) == {"channel_id", "status", "attempts"}


def test_a_rep_asking_for_someone_elses_reminders_is_refused_naming_owner_id(inbox: Inbox) -> None:
    client, _ = inbox
    answer = client.get("/reminders", params={"owner_id": "rep-2"}, headers=auth("rep-1"))
    assert answer.status_code == 403
    assert answer.json()["detail"]["field"] == "owner_id"
    assert _reminders(client, "rep-1", owner_id="rep-1")


def test_a_manager_reads_the_teams_reminders_and_no_other_teams(inbox: Inbox) -> None:
    client, deals = inbox
    found = _reminders(client, "manager-east")
    assert {r["opportunity_id"] for r in found} == {deals["rep-1"].id, deals["rep-2"].id}
    assert len(found) == 4
    only = _reminders(client, "manager-east", owner_id="rep-2")
    assert {r["owner_id"] for r in only} == {"rep-2"}
    answer = client.get("/reminders", params={"team_id": "west"}, headers=auth("manager-east"))
    assert answer.status_code == 403
    assert answer.json()["detail"]["field"] == "team_id"


@pytest.mark.parametrize("who", ["admin", "service", "viewer"])
def test_admin_service_and_viewer_read_anyones_reminders(inbox: Inbox, who: str) -> None:
    client, deals = inbox
    assert len(_reminders(client, who)) == 6
    west = _reminders(client, who, team_id="west")
    assert {r["opportunity_id"] for r in west} == {deals["rep-3"].id}
    assert west[0]["deliveries"] == []


def test_kind_since_and_limit_filter_the_inbox(inbox: Inbox) -> None:
    client, _ = inbox
    warnings = _reminders(client, "admin", kind="stale_warning")
    assert len(warnings) == 3
    assert {r["kind"] for r in warnings} == {"stale_warning"}
    since = (T0 + 10 * DAY).isoformat()
    assert {r["kind"] for r in _reminders(client, "admin", since=since)} == {"stale_warning"}
    latest = (T0 + 14 * DAY + timedelta(seconds=1)).isoformat()
    assert _reminders(client, "admin", since=latest) == []
    assert len(_reminders(client, "admin", limit=2)) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 501}, "limit"),
        ({"limit": 0}, "limit"),
        ({"kind": "party"}, "kind"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-20T00:00:00"}, "since"),
    ],
)
def test_bad_inbox_parameters_are_refused_naming_the_field(
    inbox: Inbox, params: dict[str, Any], field: str
) -> None:
    client, _ = inbox
    answer = client.get("/reminders", params=params, headers=auth("admin"))
    assert answer.status_code == 422
    assert field in str(answer.json()["detail"])
    assert str(next(iter(params.values()))) not in answer.text


def test_deliveries_are_read_by_managers_of_their_team_and_not_by_reps(inbox: Inbox) -> None:
    client, _ = inbox
    assert client.get("/deliveries", headers=auth("rep-1")).status_code == 403
    east = client.get("/deliveries", headers=auth("manager-east")).json()["deliveries"]
    assert len(east) == 4
    assert {d["team_id"] for d in east} == {"east"}
    assert client.get("/deliveries", headers=auth("manager-west")).json()["deliveries"] == []
    by_channel = client.get(
        "/deliveries", params={"channel_id": "east-wecom"}, headers=auth("viewer")
    ).json()["deliveries"]
    assert len(by_channel) == 4
    bad = client.get("/deliveries", params={"status": "lost"}, headers=auth("admin"))
    assert bad.status_code == 422
    assert "status" in str(bad.json()["detail"])
