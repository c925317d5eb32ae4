"""The pool rules over HTTP (SPEC §8.3), on SQLite and PostgreSQL: every refusal answers 409
`pool_rule` with its figures and records nothing; `override` on assign; a reclaim that
redistributes; GET /pool/standing and who may read it."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from opportunity.main import build_app
from opportunity.settings import Settings
from services.opportunity.tests.api_calls import act, create
from services.opportunity.tests.pools import SMALL, rules_with
from tests.support.opportunity_reads import history
from tests.support.postgres import fresh_database
from tests.support.principals import PRINCIPALS, auth, customer

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store of the test's own: what the reps hold and claimed must start at nothing."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/eventstore.db"
        return
    with fresh_database("oppstream_pool") as url:
        yield url


@pytest.fixture
def client(store_url: str, clock: Clock) -> Iterator[TestClient]:
    """The service under small pool rules (pools.SMALL: KA 2 claims a day, 3 held, a day's
    cooldown; SMB 2 held, least loaded), on its own clock."""
    service = build_app(
        Settings(eventstore_url=store_url),
        rules=rules_with(SMALL),
        principals=PRINCIPALS,
        clock=clock,
    )
    with TestClient(service) as test_client:
        yield test_client


def pooled(client: TestClient, tier: str = "KA") -> str:
    """A new opportunity of team east without an owner, waiting in the pool."""
    body = {"type": "new", "customer": customer(tier=tier), "team_id": "east"}
    answer = client.post("/opportunities", json=body, headers=auth("manager-east"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "pooled"
    return str(answer.json()["id"])


def owned(client: TestClient, owner: str, tier: str = "KA") -> str:
    return str(create(client, owner, customer=customer(tier=tier))["id"])


def claim(client: TestClient, oid: str, who: str) -> Any:
    return client.post(f"/opportunities/{oid}/claim", json={}, headers=auth(who))


def assign(client: TestClient, oid: str, body: dict[str, Any], who: str = "manager-east") -> Any:
    return client.post(f"/opportunities/{oid}/assign", json=body, headers=auth(who))


def refused(answer: Any) -> dict[str, Any]:
    """The `detail` of a 409 pool_rule answer, its message aside (checked to be there)."""
    assert answer.status_code == 409, answer.text
    detail = dict(answer.json()["detail"])
    assert detail.pop("error") == "pool_rule"
    assert detail.pop("message")
    return detail


def versions(client: TestClient, oid: str) -> list[int]:
    return [e["version"] for e in history(client, oid)]


def test_the_claim_over_the_daily_limit_answers_409_and_records_nothing(client: TestClient) -> None:
    oids = [pooled(client) for _ in range(3)]
    for oid in oids[:2]:
        assert claim(client, oid, "rep-1").status_code == 200

    answer = claim(client, oids[2], "rep-1")

    assert refused(answer) == {
        "rule": "pool.claim_limit_per_day",
        "rule_id": "ka",
        "limit": 2,
        "count": 2,
    }
    assert versions(client, oids[2]) == [1]


def test_the_claim_over_max_held_answers_409(client: TestClient) -> None:
    for _ in range(3):
        owned(client, "rep-1")
    oid = pooled(client)

    assert refused(claim(client, oid, "rep-1")) == {
        "rule": "pool.max_held",
        "rule_id": "ka",
        "limit": 3,
        "count": 3,
    }
    assert versions(client, oid) == [1]


def test_the_previous_owner_claiming_back_too_soon_answers_409_with_until(
    client: TestClient, clock: Clock
) -> None:
    oid = owned(client, "rep-1")
    act(client, oid, "reclaim", {"reason": "no progress"}, "manager-east")

    assert refused(claim(client, oid, "rep-1")) == {
        "rule": "pool.previous_owner_cooldown",
        "rule_id": "ka",
        "until": "2026-11-03T02:00:00+00:00",
    }
    clock.now = T0 + timedelta(days=1)
    assert claim(client, oid, "rep-1").status_code == 200


def test_an_assignment_over_max_held_answers_409_unless_a_manager_overrides(
    client: TestClient,
) -> None:
    for _ in range(3):
        owned(client, "rep-2")
    oid = pooled(client)

    assert refused(assign(client, oid, {"owner_id": "rep-2"}))["rule"] == "pool.max_held"
    answer = assign(client, oid, {"owner_id": "rep-2", "override": True})

    assert answer.status_code == 200, answer.text
    assert answer.json()["owner_id"] == "rep-2"
    assigned = history(client, oid)[-1]
    assert assigned["event_type"] == "OpportunityAssigned"
    assert assigned["payload"]["override"] is True
    assert assigned["payload"]["rule_id"] is None


def test_override_is_for_admins_and_managers(client: TestClient) -> None:
    oid = pooled(client)

    by_rep = assign(client, oid, {"owner_id": "rep-2", "override": True}, who="rep-1")
    by_service = assign(client, oid, {"owner_id": "rep-2", "override": True}, who="service")

    assert by_rep.status_code == 403
    assert by_service.status_code == 403
    assert by_service.json()["detail"]["rule"] == "role.override"
    assert versions(client, oid) == [1]
    not_a_flag = assign(client, oid, {"owner_id": "rep-2", "override": "maybe"})
    assert not_a_flag.status_code == 422


def test_a_reclaim_under_a_least_loaded_rule_answers_with_the_new_owner(
    client: TestClient,
) -> None:
    owned(client, "rep-2", tier="SMB")
    owned(client, "rep-4", tier="SMB")
    owned(client, "rep-4", tier="SMB")
    oid = owned(client, "rep-1", tier="SMB")

    answer = act(client, oid, "reclaim", {"reason": "no progress"}, "manager-east")

    # rep-1 it was reclaimed from; of the other reps of team east, rep-2 holds one deal and
    # rep-4 two.
    assert (answer["status"], answer["owner_id"]) == ("open", "rep-2")
    reclaimed, assigned = history(client, oid)[-2:]
    assert reclaimed["event_type"] == "OpportunityReclaimed"
    assert assigned["payload"] == {
        "owner_id": "rep-2",
        "previous_owner_id": None,
        "team_id": "east",
        "claimed": False,
        "override": False,
        "rule_id": "smb",
    }


# -- GET /pool/standing ------------------------------------------------------------------------------


def standing(client: TestClient, who: str, **params: str) -> Any:
    return client.get("/pool/standing", params=params, headers=auth(who))


def test_the_standing_totals_the_rules_and_lists_what_is_cooling(client: TestClient) -> None:
    claimed = pooled(client)
    assert claim(client, claimed, "rep-1").status_code == 200
    owned(client, "rep-1", tier="SMB")
    lost = owned(client, "rep-1")
    act(client, lost, "reclaim", {"reason": "no progress"}, "manager-east")

    answer = standing(client, "rep-1")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "owner_id": "rep-1",
        "held": 2,
        "max_held": 7,
        "claims_today": 1,
        "claim_limit_per_day": None,  # the SMB rules set none
        "cooling": [{"opportunity_id": lost, "until": "2026-11-03T02:00:00+00:00"}],
        "rules": [
            {
                "rule_id": "ka",
                "held": 1,
                "max_held": 3,
                "claims_today": 1,
                "claim_limit_per_day": 2,
            },
            {
                "rule_id": "smb",
                "held": 1,
                "max_held": 2,
                "claims_today": 0,
                "claim_limit_per_day": None,
            },
            {
                "rule_id": "smb-renewal",
                "held": 0,
                "max_held": 2,
                "claims_today": 0,
                "claim_limit_per_day": None,
            },
        ],
    }


def test_a_rep_without_anything_stands_at_zero(client: TestClient) -> None:
    answer = standing(client, "rep-2").json()
    assert (answer["owner_id"], answer["held"], answer["claims_today"], answer["cooling"]) == (
        "rep-2",
        0,
        0,
        [],
    )


@pytest.mark.parametrize(
    ("who", "owner", "status"),
    [
        ("rep-1", "rep-1", 200),
        ("rep-1", "rep-2", 403),
        ("manager-east", "rep-1", 200),
        ("manager-east", "rep-3", 403),
        ("manager-west", "rep-1", 403),
        ("manager-west", "nobody-known", 403),
        ("admin", "rep-3", 200),
        ("service", "rep-1", 200),
        ("viewer", "nobody-known", 200),
    ],
)
def test_who_may_read_a_standing(client: TestClient, who: str, owner: str, status: int) -> None:
    answer = standing(client, who, owner_id=owner)
    assert answer.status_code == status, answer.text
    if status == 403:
        assert answer.json()["detail"]["rule"] in {"role.owner", "role.team"}


def test_a_standing_needs_a_token_and_a_readable_owner_id(client: TestClient) -> None:
    assert client.get("/pool/standing").status_code == 401
    assert standing(client, "admin", owner_id="a\x00b").status_code == 422
    assert standing(client, "admin", owner_id="").status_code == 422
