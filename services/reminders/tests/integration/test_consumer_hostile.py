"""Hostile input on the events topic (SPEC §3.1, §7), as deployed: an `oppstream serve
reminders` process with a fresh store and a group of its own, reading `crm.opportunity.events`
while a seeded corpus of hostile records (tests.support.hostile) is published between the
events of a few opportunities and their redeliveries.

The consumer goes on: every event around the hostile records updates its opportunity's facts
and timers. A record that is no envelope, or an event whose payload the contract refuses or
whose values the service cannot store or compute with, is counted as poison and passed over;
it changes no opportunity.
"""

import random
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from uuid import uuid4

import httpx
import orjson
import pytest

from contracts import topics
from contracts.envelope import Envelope
from services.reminders.tests.helpers import Opportunity
from services.reminders.tests.processes import KAFKA_SETTINGS, reminders_env, start_reminders
from tests.support import hostile
from tests.support.hostile import Hostile
from tests.support.kafka import TestBroker
from tests.support.polling import wait_until
from tests.support.postgres import fresh_database
from tests.support.principals import auth
from tests.support.processes import Service
from tests.support.topics import Outgoing, publish

pytestmark = pytest.mark.slow

SEED = hostile.seed()
DEADLINE = 45.0
PARTITIONS = int(KAFKA_SETTINGS["topic_partitions"])
ENVELOPE_FIELDS = tuple(Envelope.model_fields)


@dataclass
class Running:
    service: Service
    client: httpx.Client
    bootstrap: str

    def facts(self, oid: str) -> dict[str, Any] | None:
        answer = self.client.get(f"/opportunities/{oid}/reminders")
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def metric(self, outcome: str) -> float:
        text = self.client.get("/metrics").text
        found = re.search(
            rf'^oppstream_reminders_events_total\{{outcome="{outcome}"\}} (\S+)$',
            text,
            re.MULTILINE,
        )
        return float(found.group(1)) if found else 0.0

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Until `condition()` holds; else fail with the seed and the service's last words."""
        wait_until(condition, DEADLINE, what, fail=self.fail)

    def caught_up(self) -> None:
        """Returns once every record published so far is taken: a creation published to each
        partition after them has reached the facts."""
        sentinels = [Opportunity("SMB") for _ in range(PARTITIONS)]
        at = datetime.now(UTC)
        publish(
            self.bootstrap,
            topics.OPPORTUNITY_EVENTS,
            [
                Outgoing(o.create(at).model_dump_json().encode(), o.id.encode(), partition=p)
                for p, o in enumerate(sentinels)
            ],
        )
        for sentinel in sentinels:
            self.wait_until(lambda o=sentinel: self.facts(o.id) is not None, "caught up")

    def fail(self, message: str) -> NoReturn:
        """Fail with the seed and what the service logged last."""
        logged = self.service.stderr_path.read_text(encoding="utf-8", errors="replace")
        lines = [line for line in logged.splitlines() if "DEBUG" not in line]
        pytest.fail(f"seed {SEED}: {message}\n" + "\n".join(lines[-20:]))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def running(request: pytest.FixtureRequest, kafka: TestBroker, tmp_path: Path) -> Iterator[Running]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path}/reminders.db"
        else:
            url = stack.enter_context(fresh_database("oppstream_reminders_hostile"))
        env = reminders_env(tmp_path, kafka, url, group=f"reminders-{uuid4().hex[:8]}")
        service = start_reminders(env, tmp_path / "reminders")
        stack.callback(service.stop)
        client = stack.enter_context(
            httpx.Client(base_url=service.url, headers=auth("admin"), timeout=10.0)
        )
        yield Running(service, client, kafka.bootstrap)


def future_schema(opportunity: Opportunity, at: datetime) -> Envelope:
    """The next event: a StageAdvanced of schema version 2, whose payload version 1 refuses."""
    envelope = opportunity.event("StageAdvanced", at, stages={"to": "negotiation"})
    return envelope.model_copy(update={"schema_version": 2})


def hostile_records(rng: random.Random, template: Envelope) -> list[Hostile]:
    """Records that are no envelope, and copies of `template` (an event of the stream) with
    one thing wrong each: the service must pass over every one."""
    message = template.model_dump(mode="json")

    def changed(case: str, **fields: Any) -> Hostile:
        return Hostile(case, orjson.dumps({**message, **fields}))

    return [
        *hostile.shapeless(rng, orjson.dumps(message)),
        *hostile.without(message, ENVELOPE_FIELDS),
        *hostile.mistyped(rng, message, ENVELOPE_FIELDS),
        *hostile.huge(rng, message, ["occurred_at", "version", "payload"]),
        hostile.nested(message, "opportunity_id"),
        changed("version 0", version=0),
        changed("negative version", version=-1),
        changed("fractional version", version=2.5),
        changed("version beyond 64 bits", version=2**64 - 1),
        changed("schema_version 0", schema_version=0),
        changed("naive occurred_at", occurred_at="2026-11-28T09:00:00"),
        changed("occurred_at not a date", occurred_at="next tuesday"),
        changed("occurred_at before year 1 in UTC", occurred_at="0001-01-01T00:00:00+01:00"),
        changed("occurred_at after 9999 in UTC", occurred_at="9999-12-31T23:59:59-01:00"),
        changed("payload the contract refuses", payload={"kind": "smoke signal", "note": 1}),
    ]


def published(envelopes: Sequence[Envelope]) -> list[Outgoing]:
    return [Outgoing(e.model_dump_json().encode(), e.opportunity_id.encode()) for e in envelopes]


def test_hostile_records_are_passed_over_and_the_events_between_them_set_timers(
    running: Running,
) -> None:
    rng = random.Random(SEED)
    at = datetime.now(UTC) - timedelta(days=1)
    later = at + timedelta(hours=1)
    ka, smb, pooled, victim = (
        Opportunity("KA"),
        Opportunity("SMB"),
        Opportunity("KA", owner_id=None),
        Opportunity("SMB"),
    )
    unknown, future = Opportunity("KA"), Opportunity("SMB")
    events = [
        ka.create(at),
        ka.advance("requirements", later),
        smb.create(at),
        pooled.create(at),
        victim.create(at),
        victim.follow_up(later),
        unknown.create(at),
        unknown.event("SomethingNewLater", later),
        unknown.advance("requirements", later),
        future.create(at),
    ]
    refused = future_schema(future, later)
    events.append(future.advance("requirements", later))
    valid = published(events)
    redelivered = [valid[1], valid[5], valid[-1]]
    opportunities = [ka, smb, pooled, victim, unknown, future]
    # The hostile copies are of the second event of an opportunity taken before them: were
    # one taken as an event, its version would show.
    target = Opportunity("SMB")
    publish(running.bootstrap, topics.OPPORTUNITY_EVENTS, published([target.create(at)]))
    draw_key = hostile.keys(rng, *(o.id.encode() for o in [*opportunities, target]))
    bad = [case.keyed(draw_key()) for case in hostile_records(rng, target.follow_up(later))]
    records = hostile.shuffled_between(
        rng, [*valid[:-1], *published([refused]), valid[-1], *redelivered], bad
    )

    running.caught_up()
    outcomes = ("applied", "duplicate", "poison", "unknown_opportunity")
    before = {o: running.metric(o) for o in outcomes}
    publish(
        running.bootstrap,
        topics.OPPORTUNITY_EVENTS,
        [r if isinstance(r, Outgoing) else Outgoing(r.value, r.key) for r in records],
    )
    for opportunity in opportunities:
        running.wait_until(
            lambda o=opportunity: (
                (running.facts(o.id) or {}).get("facts", {}).get("version") == o.version
            ),
            f"{opportunity.id} reached version {opportunity.version}",
        )
    running.caught_up()

    for opportunity in opportunities:
        found = running.facts(opportunity.id)
        assert found is not None
        facts = found["facts"]
        assert (facts["version"], facts["stage"]) == (opportunity.version, opportunity.stage)
        if opportunity is pooled:  # in the pool, nobody is reminded
            assert (facts["status"], found["next_due_at"]) == ("pooled", None)
            continue
        assert found["next_due_at"] is not None, f"{opportunity.id} has no timer running"
        assert datetime.fromisoformat(found["next_due_at"]) > datetime.now(UTC)
    progressed = running.facts(victim.id)
    assert progressed is not None
    assert datetime.fromisoformat(progressed["facts"]["last_progress_at"]) == later
    kept = running.facts(target.id)
    assert kept is not None
    assert kept["facts"]["version"] == 1, f"seed {SEED}: a hostile record was taken as an event"
    assert datetime.fromisoformat(kept["facts"]["last_progress_at"]) == at
    assert kept["fired"] == [], f"seed {SEED}: a hostile record made a timer fire"

    poison = running.metric("poison") - before["poison"]
    assert poison == len(bad) + 1, f"seed {SEED}: {poison} passed over, not {len(bad) + 1}"
    assert running.metric("duplicate") - before["duplicate"] == len(redelivered)
    assert running.metric("applied") - before["applied"] == len(events) + PARTITIONS
    assert running.metric("unknown_opportunity") == before["unknown_opportunity"]
