"""Hostile input on the opportunity service's topics (SPEC §3.3, §3.5, §7), as deployed: an
`oppstream serve opportunity` process taking `crm.leads.qualified` and
`crm.opportunity.commands`, fed a seeded corpus of hostile records (tests.support.hostile)
shuffled between valid messages and their redeliveries.

The consumers go on: every valid message around the hostile ones takes effect. A record that
is no message is parked on the topic's DLQ byte for byte with the error in its headers; a lead
with a usable lead id but a broken field is answered on `crm.leads.rejected`; a hostile record
changes nothing.
"""

import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from uuid import uuid4

import httpx
import orjson
import pytest

from contracts import topics
from contracts.leads import RejectedLead
from opportunity.domain.opportunity import Opportunity
from services.opportunity.tests.deployed import deployed, won_opportunity
from tests.support import hostile
from tests.support.hostile import Hostile
from tests.support.kafka import TestBroker
from tests.support.polling import wait_until
from tests.support.principals import auth, customer
from tests.support.processes import Service
from tests.support.topics import Consumed, Outgoing, collect, end_offsets, publish

pytestmark = pytest.mark.slow

SEED = hostile.seed()
DEADLINE = 30.0


@dataclass
class Running:
    service: Service
    client: httpx.Client
    bootstrap: str

    def metric(self, name: str, outcome: str) -> float:
        text = self.client.get("/metrics").text
        found = re.search(rf'^{name}\{{outcome="{outcome}"\}} (\S+)$', text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def get(self, oid: str) -> httpx.Response:
        return self.client.get(f"/opportunities/{oid}", headers=auth("admin"))

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Until `condition()` holds; else fail with the seed and the service's last words."""
        wait_until(condition, DEADLINE, what, fail=self.fail)

    def one_each(
        self,
        topic: str,
        wanted: Mapping[Any, str],
        key_of: Callable[[Consumed], Any],
        start: dict[int, int],
    ) -> dict[Any, Consumed]:
        """A record of `topic` after `start` for each key of `wanted` (`key_of` gives a
        record's); failing, the cases (`wanted`'s values) whose record did not come."""
        seen: set[Any] = set()

        def kept(record: Consumed) -> bool:
            key = key_of(record)
            if key in wanted:
                seen.add(key)
                return True
            return False

        try:
            found = collect(
                self.bootstrap, topic, kept, len(wanted), DEADLINE, start, distinct=key_of
            )
        except TimeoutError:
            missing = [case for key, case in wanted.items() if key not in seen]
            self.fail(f"not on {topic} within {DEADLINE} s: {missing}")
        return {key_of(record): record for record in found}

    def parked(
        self, dlq: str, source: str, parked: Sequence["Sent"], start: dict[int, int]
    ) -> dict[Any, Consumed]:
        """The DLQ copies of `parked`, found by the source position their headers name."""
        wanted = {(s.partition, s.offset): s.case for s in parked}
        return self.one_each(dlq, wanted, lambda r: source_position(r, source), start)

    def fail(self, message: str) -> NoReturn:
        """Fail with the seed and what the service logged last."""
        logged = self.service.stderr_path.read_text(encoding="utf-8", errors="replace")
        lines = [line for line in logged.splitlines() if "DEBUG" not in line]
        pytest.fail(f"seed {SEED}: {message}\n" + "\n".join(lines[-20:]))


def source_position(record: Consumed, source: str) -> tuple[int, int] | None:
    """Where a DLQ copy's headers say the record was on `source`."""
    if record.header("x-source-topic") != source.encode():
        return None
    partition, offset = record.header("x-source-partition"), record.header("x-source-offset")
    if partition is None or offset is None:
        return None
    return int(partition), int(offset)


@pytest.fixture(scope="module")
def running(kafka: TestBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One service on a fresh SQLite store, taking leads and commands in groups of its own
    (what a record is, is decided before the store is touched)."""
    workdir = tmp_path_factory.mktemp("hostile")
    with deployed("sqlite", kafka, workdir, "oppstream_hostile", timeout=10.0) as served:
        yield Running(served.service, served.client, served.bootstrap)


# -- helpers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """A published record: what it was and where it landed."""

    item: Outgoing | Hostile
    partition: int
    offset: int

    @property
    def case(self) -> str:
        return self.item.case if isinstance(self.item, Hostile) else "valid"


def send(bootstrap: str, topic: str, items: Sequence[Outgoing | Hostile]) -> list[Sent]:
    records = [
        item if isinstance(item, Outgoing) else Outgoing(item.value, item.key) for item in items
    ]
    landed = publish(bootstrap, topic, records)
    return [Sent(item, p, o) for item, (p, o) in zip(items, landed, strict=True)]


def assert_parked_unchanged(
    copies: Mapping[Any, Consumed], parked: Sequence[Sent], source: str
) -> None:
    for sent in parked:
        assert isinstance(sent.item, Hostile)
        case = sent.case
        copy = copies[(sent.partition, sent.offset)]
        original = sent.item.value or b""
        if copy.header("x-value-dropped") is None:
            assert copy.value == original, f"seed {SEED}: {case!r} changed"
        else:  # only a record at the size limit has no room for the headers
            assert len(original) > hostile.HUGE, f"seed {SEED}: {case!r} lost its value"
            assert copy.value == b"", f"seed {SEED}: {case!r}"
        assert copy.key == sent.item.key, f"seed {SEED}: {case!r} lost its key"
        assert copy.header("x-error"), f"seed {SEED}: {case!r} parked without x-error"
        assert copy.header("x-source-topic") == source.encode()


# -- crm.leads.qualified -------------------------------------------------------------------------


def lead(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "lead_id": f"lead-{uuid4()}",
        "qualified_at": datetime.now(UTC).isoformat(),
        "customer": customer(industry="manufacturing"),
        "owner_id": "rep-1",
        "team_id": "east",
        "expected_amount": "50000.00",
        "currency": "CNY",
        "source": "web",
        "notes": "met at the fair",
    }
    message.update(changes)
    return message


LEAD_REQUIRED = ("qualified_at", "customer", "customer.uscc", "customer.name", "customer.tier")
LEAD_FIELDS = (
    "qualified_at",
    "customer",
    "customer.uscc",
    "customer.name",
    "customer.tier",
    "customer.ownership",
    "customer.industry",
    "owner_id",
    "team_id",
    "expected_amount",
    "currency",
    "source",
    "notes",
)


# Texts of a lead: each has a bound, the one an opportunity created over HTTP has.
LEAD_TEXTS = ("customer.name", "customer.industry", "owner_id", "team_id", "source", "notes")


def unanswerable_leads(rng: random.Random) -> list[Hostile]:
    """No lead id to answer to: parked."""
    template = lead()
    return [
        *hostile.shapeless(rng, orjson.dumps(template)),
        *hostile.without(template, ["lead_id"]),
        *hostile.mistyped(rng, template, ["lead_id"]),
        *hostile.huge(rng, template, ["lead_id"]),
        hostile.nested(template, "lead_id"),
        Hostile("empty lead_id", orjson.dumps(lead(lead_id=""))),
    ]


def invalid_leads(rng: random.Random) -> list[Hostile]:
    """A usable lead id and a field the contract refuses: answered, each its own lead id."""
    return [
        *(case for path in LEAD_REQUIRED for case in hostile.without(lead(), [path])),
        *(case for path in LEAD_FIELDS for case in hostile.mistyped(rng, lead(), [path])),
        *(case for path in LEAD_TEXTS for case in hostile.huge(rng, lead(), [path])),
        hostile.nested(lead(), "customer"),
        Hostile("naive qualified_at", orjson.dumps(lead(qualified_at="2026-11-28T09:00:00"))),
        Hostile("negative amount", orjson.dumps(lead(expected_amount="-1.00"))),
        Hostile("empty owner_id", orjson.dumps(lead(owner_id=""))),
    ]


def test_hostile_leads_are_parked_or_refused_and_the_leads_between_them_are_taken(
    running: Running,
) -> None:
    rng = random.Random(SEED)
    valid = [Outgoing(orjson.dumps(m), m["lead_id"].encode()) for m in (lead() for _ in range(8))]
    draw_key = hostile.keys(rng, *(v.key for v in valid))
    unanswerable = [case.keyed(draw_key()) for case in unanswerable_leads(rng)]
    invalid = [case.keyed(draw_key()) for case in invalid_leads(rng)]
    redelivered = [valid[0], valid[5]]
    records = hostile.shuffled_between(rng, [*valid, *redelivered], [*unanswerable, *invalid])

    metric = "oppstream_leads_total"
    before = {o: running.metric(metric, o) for o in ("created", "taken_before", "dlq", "invalid")}
    dlq_start = end_offsets(running.bootstrap, topics.LEADS_QUALIFIED_DLQ)
    rejected_start = end_offsets(running.bootstrap, topics.LEADS_REJECTED)
    sent = send(running.bootstrap, topics.LEADS_QUALIFIED, records)

    for message in valid:
        oid = Opportunity.new_id("lead", orjson.loads(message.value or b"")["lead_id"])
        running.wait_until(
            lambda oid=oid: running.get(str(oid)).status_code == 200, f"{oid} created"
        )

    parked = [s for s in sent if isinstance(s.item, Hostile) and s.item in unanswerable]
    copies = running.parked(topics.LEADS_QUALIFIED_DLQ, topics.LEADS_QUALIFIED, parked, dlq_start)
    assert_parked_unchanged(copies, parked, topics.LEADS_QUALIFIED)

    lead_ids = {orjson.loads(case.value or b"")["lead_id"]: case.case for case in invalid}
    answers = running.one_each(
        topics.LEADS_REJECTED,
        {lead_id.encode(): case for lead_id, case in lead_ids.items()},
        lambda r: r.key,
        rejected_start,
    )
    refused = {RejectedLead.model_validate(a.json()).lead_id: a.json() for a in answers.values()}
    assert set(refused) == set(lead_ids)
    for lead_id, answer in refused.items():
        assert answer["reason"] == "invalid", (lead_ids[lead_id], answer)
        assert answer["detail"], lead_ids[lead_id]
        oid = Opportunity.new_id("lead", lead_id)
        assert running.get(str(oid)).status_code == 404, f"seed {SEED}: {lead_ids[lead_id]}"

    again = before["taken_before"] + len(redelivered)
    running.wait_until(
        lambda: running.metric(metric, "taken_before") >= again, "the redeliveries were taken"
    )
    assert running.metric(metric, "created") - before["created"] == len(valid)
    assert running.metric(metric, "taken_before") - before["taken_before"] == len(redelivered)
    assert running.metric(metric, "dlq") - before["dlq"] == len(unanswerable)
    assert running.metric(metric, "invalid") - before["invalid"] == len(invalid)


# -- crm.opportunity.commands ------------------------------------------------------------------


def created(running: Running, tier: str = "KA") -> dict[str, Any]:
    answer = running.client.post(
        "/opportunities",
        json={"type": "new", "customer": customer(tier=tier)},
        headers=auth("rep-1"),
    )
    assert answer.status_code == 201, answer.text
    state: dict[str, Any] = answer.json()
    return state


def reclaim(oid: str, based_on_version: int) -> dict[str, Any]:
    return {
        "command_id": f"cmd-{uuid4()}",
        "command": "reclaim",
        "opportunity_id": oid,
        "reason": "no progress for 30 days",
        "rule_id": "ka-default",
        "issued_at": datetime.now(UTC).isoformat(),
        "based_on_version": based_on_version,
    }


def renewal(oid: str) -> dict[str, Any]:
    return {
        "command_id": f"cmd-{uuid4()}",
        "command": "create_renewal",
        "opportunity_id": oid,
        "issued_at": datetime.now(UTC).isoformat(),
    }


def hostile_commands(rng: random.Random, victim: str, won_id: str) -> list[Hostile]:
    """Commands that would reclaim `victim` or renew `won_id`, each with one thing wrong, and
    records that are no command at all."""
    take = reclaim(victim, based_on_version=1)
    renew = renewal(won_id)
    reclaim_fields = list(take)
    renewal_fields = list(renew)

    def changed(case: str, message: dict[str, Any], **fields: Any) -> Hostile:
        return Hostile(case, orjson.dumps({**message, **fields}))

    return [
        *hostile.shapeless(rng, orjson.dumps(take)),
        *hostile.without(take, reclaim_fields),
        *hostile.without(renew, renewal_fields),
        *hostile.mistyped(rng, take, reclaim_fields),
        *hostile.mistyped(rng, renew, renewal_fields),
        *hostile.huge(rng, take, ["opportunity_id", "reason"]),
        *hostile.huge(rng, renew, ["opportunity_id"]),
        hostile.nested(take, "reason"),
        hostile.with_nul(take, "opportunity_id"),
        changed("unknown command", take, command="explode"),
        changed("reclaim: opportunity id no UUID", take, opportunity_id="not-a-uuid"),
        changed("renewal: opportunity id no UUID", renew, opportunity_id="opp-1"),
        changed("reclaim: empty reason", take, reason=""),
        changed("reclaim: version 0", take, based_on_version=0),
        changed("reclaim: fractional version", take, based_on_version=1.5),
        changed("reclaim: naive issued_at", take, issued_at="2026-11-28T09:00:00"),
        changed("renewal: not a date", renew, issued_at="yesterday"),
    ]


def test_hostile_commands_are_parked_and_the_commands_between_them_run(running: Running) -> None:
    rng = random.Random(SEED)
    victim = created(running)
    renewed = won_opportunity(running.client)
    targets = [created(running) for _ in range(6)]
    valid = [
        Outgoing(orjson.dumps(reclaim(t["id"], t["version"])), t["id"].encode()) for t in targets
    ]
    draw_key = hostile.keys(rng, victim["id"].encode(), renewed["id"].encode(), valid[2].key)
    bad = [case.keyed(draw_key()) for case in hostile_commands(rng, victim["id"], renewed["id"])]
    redelivered = [valid[1], valid[4]]
    records = hostile.shuffled_between(rng, [*valid, *redelivered], bad)

    metric = "oppstream_remote_commands_total"
    outcomes = ("reclaimed", "reclaimed_before", "dlq")
    before = {o: running.metric(metric, o) for o in outcomes}
    dlq_start = end_offsets(running.bootstrap, topics.OPPORTUNITY_COMMANDS_DLQ)
    sent = send(running.bootstrap, topics.OPPORTUNITY_COMMANDS, records)

    for target in targets:
        running.wait_until(
            lambda oid=target["id"]: running.get(oid).json()["status"] == "pooled",
            f"the reclaim of {target['id']} ran",
        )
    parked = [s for s in sent if isinstance(s.item, Hostile)]
    copies = running.parked(
        topics.OPPORTUNITY_COMMANDS_DLQ, topics.OPPORTUNITY_COMMANDS, parked, dlq_start
    )
    assert_parked_unchanged(copies, parked, topics.OPPORTUNITY_COMMANDS)

    running.wait_until(
        lambda: (
            running.metric(metric, "reclaimed_before")
            >= before["reclaimed_before"] + len(redelivered)
        ),
        "the redeliveries were taken",
    )
    assert running.metric(metric, "reclaimed") - before["reclaimed"] == len(targets)
    assert running.metric(metric, "dlq") - before["dlq"] == len(bad)
    for target in targets:
        assert running.get(target["id"]).json()["version"] == target["version"] + 1
    after = running.get(victim["id"]).json()
    assert (after["status"], after["version"], after["owner_id"]) == ("open", 1, "rep-1")
    renewals = running.client.get(
        "/opportunities",
        params={"uscc": renewed["customer"]["uscc"], "type": "renewal"},
        headers=auth("admin"),
    )
    assert renewals.status_code == 200, renewals.text
    assert renewals.json()["total"] == 0, f"seed {SEED}: a hostile command renewed"
    assert running.get(renewed["id"]).json()["version"] == renewed["version"]
