"""Coded deferrals and the forecast category override over HTTP (SPEC §9, issue 14): a reason
of the rules file (others refused naming `reason`), a note where the reason needs one, the
revisit day by default, the reasons on /pipelines; the override on PATCH by a manager or an
admin only, in every state."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from services.opportunity.tests.api_calls import act, create
from tests.support.principals import auth

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_deferral_without_a_revisit_day_is_revisited_after_the_reasons_lead(
    client: TestClient,
) -> None:
    oid = create(client)["id"]
    deferred = act(client, oid, "defer", {"reason": "fiscal_year"})
    today = datetime.now(SHANGHAI).date()
    assert deferred["revisit_on"] in {
        str(today + timedelta(days=180)),
        # The day may turn between the command and this line.
        str(today + timedelta(days=179)),
    }
    assert (deferred["status"], deferred["deferred_reason"], deferred["deferred_note"]) == (
        "deferred",
        "fiscal_year",
        None,
    )


def test_a_reason_that_needs_a_note_keeps_it_in_the_state_and_the_event(
    client: TestClient,
) -> None:
    oid = create(client)["id"]
    revisit = str(datetime.now(SHANGHAI).date() + timedelta(days=10))
    body = {"reason": "other", "note": "客户重组 reorganisation", "revisit_on": revisit}
    deferred = act(client, oid, "defer", body)
    assert (deferred["deferred_note"], deferred["revisit_on"]) == (
        "客户重组 reorganisation",
        revisit,
    )
    events = client.get(f"/opportunities/{oid}/history", headers=auth("rep-1")).json()["events"]
    assert events[-1]["payload"]["note"] == "客户重组 reorganisation"
    reactivated = act(client, oid, "reactivate")
    assert (reactivated["deferred_reason"], reactivated["deferred_note"]) == (None, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "招标周期未到"}, "reason"),
        ({"reason": "tender cycle"}, "reason"),
        ({"reason": "other"}, "note"),
        ({"reason": "other", "note": " "}, "note"),
    ],
)
def test_a_reason_not_coded_or_a_missing_note_is_refused_naming_the_field(
    client: TestClient, body: dict[str, str], field: str
) -> None:
    created = create(client)
    answer = client.post(f"/opportunities/{created['id']}/defer", json=body, headers=auth("rep-1"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", field]
    if field == "reason":
        assert "tender_cycle" in answer.json()["detail"][0]["msg"]
    after = client.get(f"/opportunities/{created['id']}", headers=auth("rep-1")).json()
    assert (after["version"], after["status"]) == (created["version"], "open")


def test_the_pipelines_list_the_deferral_reasons(client: TestClient) -> None:
    found = client.get("/pipelines", headers=auth("rep-1")).json()["deferral_reasons"]
    assert [(r["id"], r["revisit_after"], r["note_required"]) for r in found] == [
        ("tender_cycle", "P90D", False),
        ("budget_cycle", "P90D", False),
        ("fiscal_year", "P180D", False),
        ("leadership_change", "P60D", False),
        ("other", "P30D", True),
    ]
    assert found[0]["labels"] == {"zh": "招标周期未到", "en": "Tender cycle not reached"}


def test_a_manager_overrides_the_forecast_category_and_clears_it(client: TestClient) -> None:
    created = create(client)
    stage_category = created["forecast_category"]
    assert created["forecast_category_override"] is None
    assert stage_category in {"pipeline", "best_case", "commit"}
    oid = created["id"]

    def patch(body: dict[str, object], principal: str) -> dict[str, object]:
        answer = client.patch(f"/opportunities/{oid}", json=body, headers=auth(principal))
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    overridden = patch({"forecast_category": "commit"}, "manager-east")
    assert (overridden["forecast_category"], overridden["forecast_category_override"]) == (
        "commit",
        "commit",
    )
    shown = client.get(f"/opportunities/{oid}", headers=auth("rep-1")).json()
    assert (shown["forecast_category"], shown["forecast_category_override"]) == ("commit", "commit")
    events = client.get(f"/opportunities/{oid}/history", headers=auth("admin")).json()["events"]
    assert (events[-1]["event_type"], events[-1]["payload"]["changes"]) == (
        "InfoUpdated",
        {"forecast_category": "commit"},
    )
    # Another command's answer shows it too.
    followed = act(client, oid, "follow-ups", {"kind": "call", "note": "n"})
    assert followed["forecast_category"] == "commit"
    cleared = patch({"forecast_category": None}, "admin")
    assert (cleared["forecast_category"], cleared["forecast_category_override"]) == (
        stage_category,
        None,
    )


@pytest.mark.parametrize(
    ("principal", "body", "status", "named"),
    [
        ("rep-1", {"forecast_category": "commit"}, 403, "role.forecast_category"),
        ("rep-1", {"forecast_category": None}, 403, "role.forecast_category"),
        ("manager-west", {"forecast_category": "commit"}, 403, "role.team"),
        ("viewer", {"forecast_category": "commit"}, 403, "role.viewer"),
        ("admin", {"forecast_category": "closed"}, 422, "forecast_category"),
    ],
)
def test_a_forecast_category_override_refused_records_nothing(
    client: TestClient, principal: str, body: dict[str, object], status: int, named: str
) -> None:
    created = create(client)
    answer = client.patch(f"/opportunities/{created['id']}", json=body, headers=auth(principal))
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert (detail["rule"] if status == 403 else detail[0]["loc"][-1]) == named
    after = client.get(f"/opportunities/{created['id']}", headers=auth("admin")).json()
    assert after["version"] == created["version"]
    assert after["forecast_category_override"] is None
