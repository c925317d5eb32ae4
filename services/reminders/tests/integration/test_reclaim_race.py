"""A reclaim racing with progress is not applied (SPEC §3.5): the scheduler fires a reclaim
from what it knew (version 1) after the rep logged a follow-up it has not seen yet; the real
opportunity service, reading the real command topic, refuses it — and carries out the same
scheduler round's reclaim of an opportunity nobody touched."""

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from contracts import topics
from contracts.rules import load_rulebook
from reminders.adapters.kafka import kafka_publisher
from reminders.adapters.store import Store
from reminders.adapters.system_clock import system_clock
from reminders.application.intake import EventIntake
from reminders.application.ownership import Ownership
from reminders.application.scheduler import Scheduler
from reminders.domain.timers import Planner
from reminders.metrics import Metrics
from reminders.settings import Settings
from services.reminders.tests.helpers import SHANGHAI
from services.reminders.tests.processes import import_opportunity, opportunity_env
from tests.support.kafka import TestBroker
from tests.support.opportunity_reads import history, state_of
from tests.support.polling import wait_until
from tests.support.principals import auth
from tests.support.processes import running_service
from tests.support.topics import collect, end_offsets, event_id, keyed

pytestmark = pytest.mark.slow


def _refused_as_progressed(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    found = re.search(
        r'^oppstream_remote_commands_total\{outcome="progressed"\} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_a_reclaim_racing_with_progress_is_not_applied(kafka: TestBroker, tmp_path: Path) -> None:
    events_start = end_offsets(kafka.bootstrap, topics.OPPORTUNITY_EVENTS)
    env = opportunity_env(tmp_path, kafka, f"sqlite:///{tmp_path}/eventstore.db")
    with (
        running_service("opportunity", env, tmp_path / "opportunity") as opportunity,
        httpx.Client(base_url=opportunity.url, timeout=30) as client,
    ):
        racing = import_opportunity(client, "KA", idle_days=40)["id"]
        untouched = import_opportunity(client, "KA", idle_days=40)["id"]

        # What the reminders service has taken in when it fires: both creations, nothing more.
        created = collect(
            kafka.bootstrap,
            topics.OPPORTUNITY_EVENTS,
            keyed(racing, untouched),
            2,
            30,
            start=events_start,
            distinct=event_id,
        )
        store = Store(f"sqlite:///{tmp_path}/reminders.db")
        store.migrate()
        planner = Planner(load_rulebook(), SHANGHAI)
        EventIntake(store, planner, system_clock, Metrics()).apply(created)

        progress = client.post(
            f"/opportunities/{racing}/follow-ups",
            json={"kind": "call", "note": "the customer called back"},
            headers=auth("rep-1"),
        )
        assert progress.status_code == 200, progress.text

        ownership = Ownership()
        ownership.set(range(6))
        settings = Settings(kafka_bootstrap=kafka.bootstrap)
        publisher = kafka_publisher(settings)
        scheduler = Scheduler(
            store, planner, publisher, system_clock, ownership, Metrics(), 100, 0.1
        )

        async def fire() -> None:
            try:
                await scheduler.round()
            finally:
                await publisher.close()

        asyncio.run(fire())
        fired = {row["opportunity_id"]: row for row in store.fired(racing) + store.fired(untouched)}
        assert {row["kind"] for row in fired.values()} == {"reclaim_due"}

        wait_until(
            lambda: state_of(client, untouched)["status"] == "pooled",
            30,
            "the untouched opportunity is reclaimed",
        )
        wait_until(
            lambda: _refused_as_progressed(client) >= 1,
            30,
            "the racing reclaim is refused as progressed",
        )
        state = state_of(client, racing)
        assert (state["status"], state["owner_id"]) == ("open", "rep-1")
        assert "OpportunityReclaimed" not in [e["event_type"] for e in history(client, racing)]
        store.close()
