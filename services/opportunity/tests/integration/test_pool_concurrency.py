"""Races for one owner's last slot under the pool rules (SPEC §8.3, decision 0037): several
worker processes on one PostgreSQL store, many claims (and assignments) sent at once for the
last claim of the day or the last opportunity an owner may hold — exactly one wins, every
other one is refused by the rule, and nothing goes over."""

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import yaml

from contracts.rules import DEFAULT_RULES_FILE
from tests.support.postgres import fresh_database
from tests.support.principals import auth, customer
from tests.support.processes import Service, service_env, start_service

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKERS = 3
RACERS = 12
# KA: any number of claims, 3 held; SMB: 2 claims a day, any number held.
POOL = {
    "rules": [
        {"id": "ka-held", "match": {"tier": "KA"}, "max_held": 3},
        {"id": "smb-claims", "match": {"tier": "SMB"}, "claim_limit_per_day": 2},
    ]
}


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("pool-workers")
    rules = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))
    rules["pool"] = POOL
    rules_file = workdir / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    with fresh_database("oppstream_pool_race") as url:
        env = service_env(
            workdir, eventstore_url=url, workers=str(WORKERS), rules_file=str(rules_file)
        )
        service = start_service("opportunity", env, workdir)
        try:
            yield service
        finally:
            service.stop()


def post(service: Service, path: str, body: dict[str, Any], who: str) -> httpx.Response:
    # A new connection each: the kernel hands them to any of the workers.
    return httpx.post(f"{service.url}{path}", json=body, headers=auth(who), timeout=30)


def create(service: Service, tier: str, owner: str | None = None) -> str:
    body: dict[str, Any] = {"type": "new", "customer": customer(tier=tier), "team_id": "east"}
    if owner is not None:
        body["owner_id"] = owner
    answer = post(service, "/opportunities", body, "manager-east")
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def race(service: Service, sends: list[tuple[str, dict[str, Any], str]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(sends)) as pool:
        return list(pool.map(lambda send: post(service, *send), sends))


def outcomes(answers: list[httpx.Response]) -> Counter[str]:
    """Each answer as `ok` or the rule that refused it (anything else as its status)."""
    named: Counter[str] = Counter()
    for answer in answers:
        if answer.status_code == 200:
            named["ok"] += 1
        elif answer.status_code == 409 and answer.json()["detail"]["error"] == "pool_rule":
            named[answer.json()["detail"]["rule"]] += 1
        else:
            named[f"{answer.status_code} {answer.text}"] += 1
    return named


def standing(service: Service, owner: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{service.url}/pool/standing", params={"owner_id": owner}, headers=auth("admin")
    )
    assert answer.status_code == 200, answer.text
    return {r["rule_id"]: r for r in answer.json()["rules"]}


def test_claims_racing_for_the_last_slot_under_max_held_have_one_winner(
    workers: Service,
) -> None:
    for _ in range(2):
        create(workers, "KA", owner="rep-1")
    pooled = [create(workers, "KA") for _ in range(RACERS)]

    answers = race(workers, [(f"/opportunities/{oid}/claim", {}, "rep-1") for oid in pooled])

    assert outcomes(answers) == {"ok": 1, "pool.max_held": RACERS - 1}
    assert standing(workers, "rep-1")["ka-held"]["held"] == 3


def test_claims_and_assignments_racing_for_the_last_slot_have_one_winner(
    workers: Service,
) -> None:
    for _ in range(2):
        create(workers, "KA", owner="rep-2")
    pooled = [create(workers, "KA") for _ in range(RACERS)]
    half = RACERS // 2
    sends = [(f"/opportunities/{oid}/claim", {}, "rep-2") for oid in pooled[:half]] + [
        (f"/opportunities/{oid}/assign", {"owner_id": "rep-2"}, "manager-east")
        for oid in pooled[half:]
    ]

    answers = race(workers, sends)

    assert outcomes(answers) == {"ok": 1, "pool.max_held": RACERS - 1}
    assert standing(workers, "rep-2")["ka-held"]["held"] == 3


def test_claims_racing_for_the_last_claim_of_the_day_have_one_winner(workers: Service) -> None:
    first = create(workers, "SMB")
    assert post(workers, f"/opportunities/{first}/claim", {}, "manager-east").status_code == 200
    pooled = [create(workers, "SMB") for _ in range(RACERS)]

    answers = race(workers, [(f"/opportunities/{oid}/claim", {}, "manager-east") for oid in pooled])

    assert outcomes(answers) == {"ok": 1, "pool.claim_limit_per_day": RACERS - 1}
    assert standing(workers, "manager-east")["smb-claims"]["claims_today"] == 2
