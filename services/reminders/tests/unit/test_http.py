"""The service's HTTP side without a broker: health, readiness, metrics, the explanation of an
opportunity's reminders and who may read it; settings; rules changed between two starts."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from contracts.rules import Rulebook
from reminders.adapters.store import Store
from reminders.domain.clock import ManualClock
from reminders.domain.timers import Planner, managers_by_team
from reminders.main import build_app
from reminders.settings import Settings
from services.reminders.tests.helpers import DAY, SHANGHAI, T0, Harness, Opportunity
from tests.support.polling import poll
from tests.support.principals import PRINCIPALS, auth


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/reminders.db"


@pytest.fixture
def client(db_url: str, rules: Rulebook) -> Iterator[TestClient]:
    app = build_app(
        Settings(reminders_db_url=db_url),
        rules=rules,
        principals=PRINCIPALS,
        clock=ManualClock(T0 + 8 * DAY),
    )
    with TestClient(app) as test_client:
        poll(lambda: test_client.get("/readyz").status_code, lambda code: code == 200, 10)
        yield test_client


async def _opportunity_fired_a_follow_up(db_url: str, rules: Rulebook) -> Opportunity:
    store = Store(db_url)
    store.migrate()
    harness = Harness(
        store, Planner(rules, SHANGHAI, managers_by_team(PRINCIPALS.all)), ManualClock(T0)
    )
    o = Opportunity("KA", owner_id="rep-1", team_id="east")
    harness.feed(o.create(T0))
    await harness.at(T0 + 7 * DAY)
    store.close()
    return o


def test_health_readiness_and_metrics_answer_without_a_broker(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["store"] == "ok"
    assert "not configured" in ready["kafka"]
    assert "oppstream_reminders_events_total" in client.get("/metrics").text


async def test_the_explanation_shows_facts_timers_and_what_fired(
    db_url: str, rules: Rulebook, client: TestClient
) -> None:
    o = await _opportunity_fired_a_follow_up(db_url, rules)
    answer = client.get(f"/opportunities/{o.id}/reminders", headers=auth("manager-east"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["facts"]["tier"] == "KA"
    assert body["facts"]["last_progress_version"] == 1
    assert datetime.fromisoformat(body["next_due_at"]) == T0 + 14 * DAY
    assert [t["kind"] for t in body["timers"]] == [
        "follow_up",
        "stale_warning",
        "escalation",
        "reclaim_due",
    ]
    [fired] = body["fired"]
    assert fired["kind"] == "follow_up"
    assert fired["sent"] is True
    assert (
        fired["reminder"]["reminder_id"] == fired["reminder_id"] == body["timers"][0]["reminder_id"]
    )
    assert fired["reminder"]["detail"]["rule_id"] == "ka-default"


async def test_the_explanation_is_for_the_owner_the_team_manager_and_readers(
    db_url: str, rules: Rulebook, client: TestClient
) -> None:
    o = await _opportunity_fired_a_follow_up(db_url, rules)
    path = f"/opportunities/{o.id}/reminders"
    assert client.get(path).status_code == 401
    for principal in ("rep-1", "manager-east", "admin", "viewer", "service"):
        assert client.get(path, headers=auth(principal)).status_code == 200, principal
    for principal in ("rep-2", "manager-west"):
        assert client.get(path, headers=auth(principal)).status_code == 403, principal
    assert client.get("/opportunities/nope/reminders", headers=auth("admin")).status_code == 404


async def test_a_rules_change_replans_every_opportunity_at_start(
    db_url: str, rules: Rulebook
) -> None:
    o = await _opportunity_fired_a_follow_up(db_url, rules)
    tighter = rules.model_copy(
        update={
            "version": "tighter",
            "reminders": rules.reminders.model_copy(
                update={
                    "rules": tuple(
                        r.model_copy(update={"warn_after": timedelta(days=9)})
                        if r.id == "ka-default"
                        else r
                        for r in rules.reminders.rules
                    )
                }
            ),
        }
    )
    app = build_app(
        Settings(reminders_db_url=db_url),
        rules=tighter,
        principals=PRINCIPALS,
        clock=ManualClock(T0 + 8 * DAY),
    )
    with TestClient(app):
        runtime = app.state.runtime
        poll(lambda: runtime.replanned, deadline=10)
        _, due = app.state.store.facts(o.id)
        # Before: the warning at 14 days. Now the scheduler looks again no later than the
        # tighter warning (at once, even: the follow-up it sent is overdue, and is not resent).
        assert due <= T0 + 9 * DAY


def test_the_scheduler_looks_at_least_once_a_second() -> None:
    assert Settings().reminders_tick_ms <= 1000
    with pytest.raises(ValidationError, match="reminders_tick_ms"):
        Settings(reminders_tick_ms=1500)


def test_the_store_url_is_checked() -> None:
    assert Settings().reminders_db_url == "sqlite:///var/reminders.db"
    with pytest.raises(ValidationError, match="reminders_db_url"):
        Settings(reminders_db_url="mysql://x")


def test_the_manual_clock_only_moves_forward_when_advanced() -> None:
    clock = ManualClock(T0)
    assert clock() == T0
    assert clock.advance(DAY) == T0 + DAY
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-DAY)
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
    assert clock.set(datetime(2027, 1, 1, tzinfo=UTC)).year == 2027
