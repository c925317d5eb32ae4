"""Commands from other services as deployed (SPEC §3.5): published with a plain aiokafka
producer to `crm.opportunity.commands`, executed by an `oppstream serve opportunity` process
on SQLite and on PostgreSQL. A reclaim runs only if nothing progressed since the version it
was based on; a renewal is created once; bytes that are no command go to the commands DLQ
and the consumer goes on."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import orjson
import pytest

from contracts import topics
from contracts.commands import CreateRenewalCommand, ReclaimCommand
from opportunity.domain.opportunity import Opportunity
from services.opportunity.tests.deployed import STORES, Deployed, deployed, won_opportunity
from tests.support.kafka import TestBroker
from tests.support.opportunity_reads import history, state_of
from tests.support.polling import wait_until
from tests.support.principals import auth, customer
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

DEADLINE = 30.0


@pytest.fixture(scope="module", params=STORES)
def commands(
    request: pytest.FixtureRequest, kafka: TestBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    """One service taking commands on a fresh store, shared by this module's tests."""
    workdir = tmp_path_factory.mktemp(f"commands-{request.param}")
    with deployed(request.param, kafka, workdir, "oppstream_commands", timeout=10.0) as served:
        yield served


# -- helpers ---------------------------------------------------------------------------------


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(path, json=body, headers=auth("rep-1"))
    assert answer.is_success, f"{path}: {answer.status_code} {answer.text}"
    state: dict[str, Any] = answer.json()
    return state


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


def wait_for_outcome(commands: Deployed, outcome: str, before: float, times: int = 1) -> None:
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


def send(commands: Deployed, *issued: ReclaimCommand | CreateRenewalCommand) -> None:
    publish(
        commands.bootstrap,
        topics.OPPORTUNITY_COMMANDS,
        [
            Outgoing(orjson.dumps(c.model_dump(mode="json")), c.opportunity_id.encode())
            for c in issued
        ],
    )


# -- reclaim ---------------------------------------------------------------------------------


def test_a_reclaim_based_on_a_stale_version_records_nothing(commands: Deployed) -> None:
    state = followed_up(commands.client)
    assert state["version"] == 2
    before = outcomes(commands.client, "progressed")
    send(commands, reclaim(state["id"], based_on_version=1))
    wait_for_outcome(commands, "progressed", before)
    after = state_of(commands.client, state["id"])
    assert (after["version"], after["status"], after["owner_id"]) == (2, "open", "rep-1")
    assert [e["event_type"] for e in history(commands.client, state["id"])] == [
        "OpportunityCreated",
        "FollowUpLogged",
    ]


def test_a_reclaim_based_on_the_current_version_pools_the_opportunity_once(
    commands: Deployed,
) -> None:
    start = end_offsets(commands.bootstrap, topics.OPPORTUNITY_EVENTS)
    state = followed_up(commands.client)
    oid = state["id"]
    command = reclaim(oid, based_on_version=state["version"])
    refused_before = outcomes(commands.client, "reclaimed_before")
    send(commands, command, command)  # the second is a redelivery

    wait_until(
        lambda: state_of(commands.client, oid)["status"] == "pooled", DEADLINE, "the reclaim ran"
    )
    wait_for_outcome(commands, "reclaimed_before", refused_before)
    after = state_of(commands.client, oid)
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


def test_a_reclaim_sent_again_after_the_opportunity_was_claimed_is_taken_once(
    commands: Deployed,
) -> None:
    state = followed_up(commands.client)
    oid = state["id"]
    command = reclaim(oid, based_on_version=state["version"])
    send(commands, command)
    wait_until(
        lambda: state_of(commands.client, oid)["status"] == "pooled", DEADLINE, "the reclaim ran"
    )
    claimed = commands.client.post(f"/opportunities/{oid}/claim", json={}, headers=auth("rep-2"))
    assert claimed.status_code == 200, claimed.text
    before = outcomes(commands.client, "reclaimed_before")
    send(commands, command)  # as the reminders service does after the broker lost its log
    wait_for_outcome(commands, "reclaimed_before", before)
    after = state_of(commands.client, oid)
    assert (after["status"], after["owner_id"], after["version"]) == ("open", "rep-2", 4)


def test_a_reclaim_runs_when_only_non_progress_events_followed_its_version(
    commands: Deployed,
) -> None:
    state = followed_up(commands.client)
    oid = state["id"]
    changed = commands.client.patch(
        f"/opportunities/{oid}", json={"title": "renamed"}, headers=auth("rep-1")
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 3  # InfoUpdated is no progress (SPEC §6)
    send(commands, reclaim(oid, based_on_version=2))
    wait_until(
        lambda: state_of(commands.client, oid)["status"] == "pooled", DEADLINE, "the reclaim ran"
    )
    assert state_of(commands.client, oid)["version"] == 4


# -- create_renewal ------------------------------------------------------------------------------


def test_create_renewal_twice_creates_one_renewal(commands: Deployed) -> None:
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
    renewal = state_of(commands.client, answer.json()["items"][0]["id"])
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
    commands: Deployed,
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
        lambda: state_of(commands.client, oid)["status"] == "pooled",
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
