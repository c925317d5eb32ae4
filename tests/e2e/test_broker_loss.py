"""The event store is the truth, Kafka a transport (SPEC §7): when the broker loses its log,
every read model and the reminders catch up with what was recorded before and after the loss,
without an operator, and nothing is applied twice.

Two ways to lose the log: the broker killed and started empty on the same port while the
services run; and the whole system stopped, the broker started empty, the services started
again on the stores they kept (`make demo`, Ctrl-C, `make up`), on SQLite and PostgreSQL.
"""

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import orjson
import pytest
import sqlalchemy as sa

from chassis.kafka.producing import ensure_topics
from chassis.settings import OppstreamSettings, sqlalchemy_url
from contracts import topics
from opportunity.domain.opportunity import Opportunity
from oppstream.broker import start_tansu
from oppstream.up import System, system_up
from services.opportunity.tests.deployed import won_opportunity
from services.reminders.tests.processes import import_opportunity
from tests.support.opportunity_reads import history, state_of
from tests.support.polling import wait_until
from tests.support.postgres import fresh_database
from tests.support.principals import auth, customer
from tests.support.processes import write_auth_file
from tests.support.topics import Outgoing, collect, keyed, publish

pytestmark = pytest.mark.slow

# SPEC §7: within 60 s of the broker answering again.
RECOVERY = 60.0
STORE_VARIABLES = (
    "OPPSTREAM_EVENTSTORE_URL",
    "OPPSTREAM_PROJECTIONS_DB_URL",
    "OPPSTREAM_REMINDERS_DB_URL",
)


@dataclass
class Stores:
    """Where the three services keep their state, kept across every start of the system."""

    urls: dict[str, str]

    def projected(self) -> dict[str, int]:
        """Opportunity id → version, as the BI table `bi_opportunity` holds them."""
        engine = sa.create_engine(sqlalchemy_url(self.urls["OPPSTREAM_PROJECTIONS_DB_URL"]))
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT id, version FROM bi_opportunity"))
                return {str(oid): int(version) for oid, version in rows}
        finally:
            engine.dispose()


@contextlib.contextmanager
def kept_stores(tmp_path: Path, kind: str) -> Iterator[Stores]:
    if kind == "sqlite":
        yield Stores(_sqlite(tmp_path))
        return
    with (
        fresh_database("loss_events") as events,
        fresh_database("loss_projections") as projections,
        fresh_database("loss_reminders") as reminders,
    ):
        yield Stores(dict(zip(STORE_VARIABLES, (events, projections, reminders), strict=True)))


def _sqlite(tmp_path: Path) -> dict[str, str]:
    return {
        name: f"sqlite:///{tmp_path}/var/{file}"
        for name, file in zip(
            STORE_VARIABLES, ("eventstore.db", "projections.db", "reminders.db"), strict=True
        )
    }


@contextlib.contextmanager
def system(tmp_path: Path, stores: Stores) -> Iterator[System]:
    """`oppstream up` in `tmp_path` with its own empty embedded broker, on `stores`."""
    saved = dict(os.environ)
    before = Path.cwd()
    os.environ.pop("OPPSTREAM_KAFKA_BOOTSTRAP", None)  # a broker of its own, to lose
    os.environ["OPPSTREAM_KAFKA_SESSION_TIMEOUT_MS"] = "3000"
    os.environ["OPPSTREAM_AUTH_FILE"] = str(write_auth_file(tmp_path / "auth.json"))
    os.environ.update(stores.urls)
    os.chdir(tmp_path)
    try:
        with system_up(log_dir=tmp_path / "var" / "log") as started:
            yield started
    finally:
        os.chdir(before)
        os.environ.clear()
        os.environ.update(saved)


class Team:
    """The sales team, over HTTP, with the test principals' tokens."""

    def __init__(self, started: System) -> None:
        self.http = httpx.Client(base_url=started.url("opportunity"), timeout=30)
        self.projections = httpx.Client(base_url=started.url("projections"), timeout=30)
        self.reminders = httpx.Client(base_url=started.url("reminders"), timeout=30)

    def auth(self, who: str = "admin") -> dict[str, str]:
        return auth(who)

    def create(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            answer = self.http.post(
                "/opportunities",
                json={
                    "type": "new",
                    "customer": customer(),
                    "owner_id": "rep-1",
                    "team_id": "east",
                },
                headers=self.auth(),
            )
            assert answer.status_code == 201, answer.text
            ids.append(answer.json()["id"])
        return ids

    def advance(self, oid: str, stage: str) -> None:
        answer = self.http.post(
            f"/opportunities/{oid}/advance", json={"to_stage": stage}, headers=self.auth()
        )
        assert answer.status_code == 200, answer.text

    def versions(self, ids: list[str]) -> dict[str, int]:
        return {oid: int(state_of(self.http, oid)["version"]) for oid in ids}

    def recorded_events(self) -> int:
        """Every opportunity event the store holds (the /notifications feed)."""
        return self.notifications()[0]

    def notifications(self) -> tuple[int, int]:
        """How many opportunity events the store holds, and the position of the last."""
        total, after = 0, 0
        while True:
            answer = self.http.get(
                "/notifications", params={"after": after, "limit": 1000}, headers=self.auth()
            )
            assert answer.status_code == 200, answer.text
            page = answer.json()
            if not page["items"]:
                return total, after
            total += len(page["items"])
            after = page["next_after"]

    def funnel_reached(self) -> int:
        answer = self.projections.get("/funnel", headers=self.auth("viewer"))
        assert answer.status_code == 200, answer.text
        return sum(p["stages"][0]["reached"] for p in answer.json()["pipelines"])

    def metric(self, client: httpx.Client, name: str, **labels: str) -> float:
        text = client.get("/metrics").text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (not wanted or wanted in line):
                head, _, value = line.rpartition(" ")
                if head.split("{")[0] == name:
                    total += float(value)
        return total

    def close(self) -> None:
        for client in (self.http, self.projections, self.reminders):
            client.close()


@contextlib.contextmanager
def running_on_sqlite(tmp_path: Path) -> Iterator[tuple[Stores, System, Team]]:
    """The system up on SQLite stores of its own, and the sales team talking to it."""
    with kept_stores(tmp_path, "sqlite") as stores, system(tmp_path, stores) as started:
        team = Team(started)
        try:
            yield stores, started, team
        finally:
            team.close()


def wait_projected(stores: Stores, team: Team, ids: list[str]) -> None:
    """Until bi_opportunity holds every opportunity at the version the store has."""

    def caught_up() -> bool:
        wanted = team.versions(ids)
        return {oid: v for oid, v in stores.projected().items() if oid in wanted} == wanted

    wait_until(
        caught_up,
        RECOVERY,
        f"every one of {len(ids)} opportunities in bi_opportunity at its recorded version",
        interval=0.5,
    )
    assert team.funnel_reached() == len(ids)


def wait_reclaimed(team: Team, oid: str) -> dict[str, Any]:
    """The 40-day-idle KA deal is reclaimed once: its reminder fired after the loss."""
    wait_until(
        lambda: state_of(team.http, oid)["status"] == "pooled",
        RECOVERY,
        "the 40-day-idle KA deal recorded after the loss is reminded and reclaimed",
    )
    reclaims = [e for e in history(team.http, oid) if e["event_type"] == "OpportunityReclaimed"]
    assert len(reclaims) == 1
    explained = team.reminders.get(f"/opportunities/{oid}/reminders", headers=team.auth())
    assert explained.status_code == 200, explained.text
    return dict(explained.json())


def wait_read_by_all(team: Team) -> int:
    """Until the relay knows that every reader group read every event; how many there are."""
    recorded, last = team.notifications()
    wait_until(
        lambda: team.metric(team.http, "oppstream_relay_read_by_all") >= last,
        RECOVERY,
        "the relay knows that every reader group read every event",
        interval=0.5,
    )
    return recorded


def wait_applied(team: Team, before: int = 0) -> None:
    """Until projections applied, once each, every event recorded in this run (the reclaim,
    recorded a moment ago, too): what they read again they passed over as duplicates."""
    wait_until(
        lambda: (
            team.metric(team.projections, "oppstream_projection_events_total", outcome="applied")
            == team.recorded_events() - before
        ),
        RECOVERY,
        "projections applied each event recorded in this run once",
        interval=0.5,
    )


def lose_the_log(started: System) -> None:
    """Kill the broker and start an empty one on the same port."""
    assert started.broker is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(started.broker.pid, signal.SIGKILL)
    started.broker.wait(timeout=10)
    port = int(started.bootstrap.rsplit(":", 1)[1])
    started.broker, _ = start_tansu(port=port, log=started.log_dir / "broker-again.log")


def test_a_broker_that_loses_its_log_under_running_services_loses_no_event(
    tmp_path: Path,
) -> None:
    with running_on_sqlite(tmp_path) as (stores, started, team):
        # A longer log before the loss than after it: every consumer stands past the end
        # of the new one, where the broker hands it nothing.
        before = team.create(40)
        for oid in before[:6]:
            team.advance(oid, "requirements")
        # A contract that runs long enough that no renewal is due in this test.
        runs_on = datetime.now(UTC).date() + timedelta(days=400)
        won = won_opportunity(team.http, ends_on=runs_on)["id"]
        before.append(won)
        wait_projected(stores, team, before)

        lose_the_log(started)
        after = team.create(8)
        for oid in before[6:9]:
            team.advance(oid, "requirements")
        stale = import_opportunity(team.http, "KA", idle_days=40)["id"]

        wait_projected(stores, team, [*before, *after, stale])
        explained = wait_reclaimed(team, stale)
        assert explained, "the reminders service explains the reclaim"
        assert team.metric(team.http, "oppstream_relay_log_losses_total") >= 1
        wait_applied(team)
        # Who reads the won topic is not known: its messages are all published again (at
        # least once: a retry may send one twice, with its event id).
        again = collect(started.bootstrap, topics.OPPORTUNITY_WON, keyed(won), 1, RECOVERY)
        assert {(r.json()["opportunity_id"], r.json()["event_id"]) for r in again} == {
            (won, again[0].json()["event_id"])
        }
        assert team.metric(team.projections, "oppstream_log_losses_total") >= 1
        assert team.metric(team.reminders, "oppstream_log_losses_total") >= 1


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_system_started_again_on_kept_stores_with_an_empty_broker_loses_no_event(
    tmp_path: Path, kind: str
) -> None:
    with kept_stores(tmp_path, kind) as stores:
        with system(tmp_path, stores) as first:
            team = Team(first)
            try:
                before = team.create(10)
                for oid in before[:5]:
                    team.advance(oid, "requirements")
                wait_projected(stores, team, before)
                recorded_before = wait_read_by_all(team)
            finally:
                team.close()
        # Ctrl-C, then `up` again: the embedded broker starts empty, the stores are kept.
        with system(tmp_path, stores) as second:
            team = Team(second)
            try:
                after = team.create(6)
                team.advance(before[7], "requirements")
                stale = import_opportunity(team.http, "KA", idle_days=40)["id"]

                wait_projected(stores, team, [*before, *after, stale])
                wait_reclaimed(team, stale)
                # This run applied what was recorded after the loss, once; the relay published
                # again nothing of what every reader had read before.
                wait_applied(team, recorded_before)
                duplicates = team.metric(
                    team.projections, "oppstream_projection_events_total", outcome="duplicates"
                )
                assert duplicates == 0
            finally:
                team.close()


def send_leads(started: System, count: int) -> list[str]:
    """`count` qualified leads, as the lead service publishes them; their ids."""
    ids = [f"lead-{uuid4()}" for _ in range(count)]
    publish(
        started.bootstrap,
        topics.LEADS_QUALIFIED,
        [
            Outgoing(
                orjson.dumps(
                    {
                        "lead_id": lead_id,
                        "qualified_at": datetime.now(UTC).isoformat(),
                        "customer": customer(),
                        "owner_id": "rep-1",
                        "team_id": "east",
                        "source": "web",
                    }
                ),
                lead_id.encode(),
            )
            for lead_id in ids
        ],
    )
    return ids


def wait_taken(team: Team, leads: list[str]) -> None:
    def taken() -> bool:
        return all(
            team.http.get(
                f"/opportunities/{Opportunity.new_id('lead', lead)}", headers=team.auth()
            ).status_code
            == 200
            for lead in leads
        )

    wait_until(taken, RECOVERY, f"each of {len(leads)} leads became an opportunity", interval=0.5)


def test_leads_sent_after_the_broker_lost_its_log_under_a_frozen_service_are_taken(
    tmp_path: Path,
) -> None:
    with running_on_sqlite(tmp_path) as (stores, started, team):
        before = send_leads(started, 60)
        wait_taken(team, before)
        service = started.services["opportunity"]
        os.kill(service.pid, signal.SIGSTOP)  # neither fetching nor committing meanwhile
        try:
            lose_the_log(started)
            asyncio.run(ensure_topics(OppstreamSettings(kafka_bootstrap=started.bootstrap)))
        finally:
            os.kill(service.pid, signal.SIGCONT)
        after = send_leads(started, 12)
        wait_taken(team, after)
        assert team.metric(team.http, "oppstream_log_losses_total") >= 1


def test_consumers_away_while_the_broker_lost_its_log_find_the_shorter_new_one(
    tmp_path: Path,
) -> None:
    # Frozen meanwhile, projections and reminders come back standing past the end of a new
    # log that already holds records: the broker hands them nothing there.
    with running_on_sqlite(tmp_path) as (stores, started, team):
        before = team.create(60)
        wait_projected(stores, team, before)
        wait_read_by_all(team)  # the relay will publish nothing of it again
        away = [started.services[name].pid for name in ("projections", "reminders")]
        for pid in away:
            os.kill(pid, signal.SIGSTOP)
        try:
            lose_the_log(started)
            after = team.create(6)
            stale = import_opportunity(team.http, "KA", idle_days=40)["id"]
        finally:
            for pid in away:
                os.kill(pid, signal.SIGCONT)
        wait_projected(stores, team, [*before, *after, stale])
        wait_reclaimed(team, stale)
