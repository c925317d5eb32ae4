"""Commands from other services as deployed (SPEC §3.5): published with a plain aiokafka
producer to `crm.opportunity.commands`, executed by an `oppstream serve opportunity` process
on SQLite and on PostgreSQL. A reclaim runs only if nothing progressed since the version it
was based on; a renewal is created once; bytes that are no command go to the commands DLQ
and the consumer goes on."""

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import orjson
import pytest

from contracts import topics
from contracts.commands import CreateRenewalCommand, ReclaimCommand
from opportunity.domain import Opportunity
from tests.support.kafka import TestBroker
from tests.support.postgres import fresh_database
from tests.support.principals import auth, customer
from tests.support.processes import Service, running_service, service_env
from tests.support.topics import (
    Outgoing,
    collect,
    end_offsets,
    event_id,
    keyed,
    publish,
    publish_json,
)

pytestmark = pytest.mark.slow

TODAY = datetime.now(UTC).date()
DEADLINE = 30.0


@dataclass
class Commands:
    service: Service
    client: httpx.Client
    bootstrap: str


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def commands(
    request: pytest.FixtureRequest, kafka: TestBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Commands]:
    """One service taking commands on a fresh store, shared by this module's tests."""
    workdir = tmp_path_factory.mktemp(f"commands-{request.param}")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{workdir}/store/eventstore.db"
        else:
            url = stack.enter_context(fresh_database("oppstream_commands"))
        env = service_env(
            workdir,
            eventstore_url=url,
            kafka_bootstrap=kafka.bootstrap,
            topic_partitions="6",
            kafka_session_timeout_ms="3000",
            kafka_fetch_max_wait_ms="10",
        )
        service = stack.enter_context(running_service("opportunity", env, workdir))
        client = stack.enter_context(httpx.Client(base_url=service.url, timeout=10.0))
        yield Commands(service, client, kafka.bootstrap)


# -- helpers ---------------------------------------------------------------------------------


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(path, json=body, headers=auth("rep-1"))
    assert answer.is_success, f"{path}: {answer.status_code} {answer.text}"
    state: dict[str, Any] = answer.json()
    return state


def get(client: httpx.Client, oid: str) -> dict[str, Any]:
    answer = client.get(f"/opportunities/{oid}", headers=auth("admin"))
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def history(client: httpx.Client, oid: str) -> list[dict[str, Any]]:
    answer = client.get(f"/opportunities/{oid}/history", headers=auth("admin"))
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def followed_up(client: httpx.Client) -> dict[str, Any]:
    """An open opportunity of rep-1 at version 2, its last progress a follow-up."""
    oid = post(client, "/opportunities", {"type": "new", "customer": customer()})["id"]
    return post(client, f"/opportunities/{oid}/follow-ups", {"kind": "call", "note": "first call"})


def outcomes(client: httpx.Client, outcome: str) -> float:
    text = client.get("/metrics").text
    found = re.search(
        rf'^oppstream_remote_commands_total\{{outcome="{outcome}"\}} (\S+)$', text, re.MULTILINE
    )
    return float(found.group(1)) if found else 0.0


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def wait_for_outcome(commands: Commands, outcome: str, before: float, times: int = 1) -> None:
    wait_until(
        lambda: outcomes(commands.client, outcome) >= before + times,
        DEADLINE,
        f"{times} command(s) executed with outcome {outcome!r}",
    )


def reclaim(oid: str, based_on_version: int) -> ReclaimCommand:
    return ReclaimCommand(
        command_id=f"cmd-{uuid4()}",
        command="reclaim",
        opportunity_id=oid,
        reason="no progress for 30 days",
        rule_id="ka-default",
        issued_at=datetime.now(UTC),
        based_on_version=based_on_version,
    )


def send(commands: Commands, *issued: ReclaimCommand | CreateRenewalCommand) -> None:
    publish(
        commands.bootstrap,
        topics.OPPORTUNITY_COMMANDS,
        [
            Outgoing(orjson.dumps(c.model_dump(mode="json")), c.opportunity_id.encode())
            for c in issued
        ],
    )


# -- reclaim ---------------------------------------------------------------------------------


def test_a_reclaim_based_on_a_stale_version_records_nothing(commands: Commands) -> None:
    state = followed_up(commands.client)
    assert state["version"] == 2
    before = outcomes(commands.client, "progressed")
    send(commands, reclaim(state["id"], based_on_version=1))
    wait_for_outcome(commands, "progressed", before)
    after = get(commands.client, state["id"])
    assert (after["version"], after["status"], after["owner_id"]) == (2, "open", "rep-1")
    assert [e["event_type"] for e in history(commands.client, state["id"])] == [
        "OpportunityCreated",
        "FollowUpLogged",
    ]


def test_a_reclaim_based_on_the_current_version_pools_the_opportunity_once(
    commands: Commands,
) -> None:
    start = end_offsets(commands.bootstrap, topics.OPPORTUNITY_EVENTS)
    state = followed_up(commands.client)
    oid = state["id"]
    command = reclaim(oid, based_on_version=state["version"])
    refused_before = outcomes(commands.client, "not_reclaimable_while_pooled")
    send(commands, command, command)  # the second is a redelivery

    wait_until(lambda: get(commands.client, oid)["status"] == "pooled", DEADLINE, "the reclaim ran")
    wait_for_outcome(commands, "not_reclaimable_while_pooled", refused_before)
    after = get(commands.client, oid)
    assert (after["version"], after["owner_id"]) == (3, None)
    reclaimed = history(commands.client, oid)[-1]
    assert reclaimed["event_type"] == "OpportunityReclaimed"
    assert reclaimed["version"] == 3
    assert reclaimed["payload"]["rule_id"] == "ka-default"
    assert reclaimed["payload"]["command_id"] == command.command_id
    assert reclaimed["payload"]["previous_owner_id"] == "rep-1"
    assert reclaimed["payload"]["reason"] == command.reason

    relayed = collect(
        commands.bootstrap,
        topics.OPPORTUNITY_EVENTS,
        keyed(oid),
        3,
        DEADLINE,
        start,
        distinct=event_id,
    )
    assert reclaimed in [r.json() for r in relayed]


def test_a_reclaim_runs_when_only_non_progress_events_followed_its_version(
    commands: Commands,
) -> None:
    state = followed_up(commands.client)
    oid = state["id"]
    changed = commands.client.patch(
        f"/opportunities/{oid}", json={"title": "renamed"}, headers=auth("rep-1")
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 3  # InfoUpdated is no progress (SPEC §6)
    send(commands, reclaim(oid, based_on_version=2))
    wait_until(lambda: get(commands.client, oid)["status"] == "pooled", DEADLINE, "the reclaim ran")
    assert get(commands.client, oid)["version"] == 4


# -- create_renewal ------------------------------------------------------------------------------


def won_opportunity(client: httpx.Client) -> dict[str, Any]:
    oid = post(client, "/opportunities", {"type": "new", "customer": customer(tier="SMB")})["id"]
    for stage in ("requirements", "proposal", "negotiation", "signing"):
        post(client, f"/opportunities/{oid}/advance", {"to_stage": stage})
    return post(
        client,
        f"/opportunities/{oid}/win",
        {
            "amount": "64000.00",
            "contract_ref": f"HT-{oid[:8]}",
            "contract_start_on": str(TODAY),
            "contract_end_on": str(TODAY + timedelta(days=60)),
        },
    )


def test_create_renewal_twice_creates_one_renewal(commands: Commands) -> None:
    won = won_opportunity(commands.client)
    created_before = outcomes(commands.client, "created")
    repeated_before = outcomes(commands.client, "created_before")
    issued = [
        CreateRenewalCommand(
            command_id=f"cmd-{uuid4()}",
            command="create_renewal",
            opportunity_id=won["id"],
            issued_at=datetime.now(UTC),
        )
        for _ in range(2)
    ]
    send(commands, *issued)
    wait_for_outcome(commands, "created", created_before)
    wait_for_outcome(commands, "created_before", repeated_before)

    answer = commands.client.get(
        "/opportunities",
        params={"uscc": won["customer"]["uscc"], "type": "renewal"},
        headers=auth("admin"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 1, answer.json()
    renewal = get(commands.client, answer.json()["items"][0]["id"])
    assert renewal["id"] == str(Opportunity.new_id("renewal", won["id"]))
    assert renewal["type"] == "renewal"
    assert renewal["pipeline_id"] == "renewal"
    assert renewal["renewal_of"] == won["id"]
    assert (renewal["owner_id"], renewal["team_id"]) == (won["owner_id"], won["team_id"])
    assert renewal["customer"] == won["customer"]
    assert renewal["status"] == "open"
    assert renewal["version"] == 1


# -- poison ------------------------------------------------------------------------------------


def test_poison_goes_to_the_commands_dlq_unchanged_and_the_next_command_runs(
    commands: Commands,
) -> None:
    state = followed_up(commands.client)
    oid = state["id"]
    key = oid.encode()  # one key: one partition, so the command comes after the poison
    garbage = b"\x00\x01 not a command at all"
    unknown = orjson.dumps({"command": "explode", "opportunity_id": oid})
    start = end_offsets(commands.bootstrap, topics.OPPORTUNITY_COMMANDS_DLQ)
    publish(
        commands.bootstrap,
        topics.OPPORTUNITY_COMMANDS,
        [Outgoing(garbage, key), Outgoing(unknown, key)],
    )
    command = reclaim(oid, based_on_version=state["version"])
    publish_json(
        commands.bootstrap, topics.OPPORTUNITY_COMMANDS, oid, command.model_dump(mode="json")
    )

    wait_until(
        lambda: get(commands.client, oid)["status"] == "pooled",
        DEADLINE,
        "the command after the poison ran",
    )
    parked = collect(
        commands.bootstrap, topics.OPPORTUNITY_COMMANDS_DLQ, keyed(oid), 2, DEADLINE, start
    )
    assert [r.value for r in parked] == [garbage, unknown]
    for record in parked:
        assert record.header("x-error"), record.headers
        assert record.header("x-source-topic") == topics.OPPORTUNITY_COMMANDS.encode()
