"""Writes a golden event store (SPEC §7: stored events outlive the code).

The code of this release records fifteen opportunities through its HTTP API (commands) and
its application layer (creations with fixed ids, the Kafka intake of a lead, the reminders'
reclaim and renewal commands), covering every event type the aggregates record, an
Idempotency-Key answer and a snapshot; then the customers' key persons, the pool's ledgers and
cursor (under the shipped rules file with one pool rule more, `GOLDEN_POOL_RULE`), targets and
a competition; once on SQLite and once on PostgreSQL. It keeps, in `golden/<release>/`:

- eventstore.sqlite: the SQLite store, compacted into one file;
- eventstore.postgres.sql: the PostgreSQL database as pg_dump writes it (tables, the
  recording function, sequences, rows), loadable with psql or one psycopg `execute`;
- aggregates.json: every aggregate as this code replays it (the same for both stores);
- notifications.<store>.json: the relay's feed (position, envelope) and the won messages;
- bi_opportunity.json: the projections' rows after applying the feed.

A release's folder is written once and then kept as it is: later code must read it. Run, from
the repository root, with the PostgreSQL server of the tests up and pg_dump on the PATH:

    .venv/bin/python -m services.opportunity.tests.golden.write_golden v0.7.0
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from fastapi.testclient import TestClient
from stdnum.cn import uscc as stdnum_uscc

from chassis.auth import Principal
from contracts.commands import CreateRenewalCommand, ReclaimCommand
from contracts.customer import Customer
from contracts.customer_rules import PoolRule
from contracts.leads import QualifiedLead
from contracts.rules import Role, Rulebook, load_rulebook
from opportunity.application.app import OpportunityApp
from opportunity.application.creating import NewOpportunity
from opportunity.application.unit_of_work import Context, UnitOfWork
from opportunity.domain.opportunity import Opportunity
from opportunity.entrypoints.command_intake import REMINDERS
from opportunity.entrypoints.http.api import Api
from opportunity.entrypoints.lead_intake import INTAKE
from opportunity.main import build_app
from opportunity.settings import Settings
from services.opportunity.tests.golden import reading
from tests.support.postgres import fresh_database
from tests.support.principals import PRINCIPALS, TOKENS, auth

T = TypeVar("T")

START = datetime(2026, 8, 3, 1, 0, tzinfo=UTC)  # a Monday, 09:00 in Shanghai
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# The pool rule the recording adds to the shipped ones: a foreign SMB customer's opportunity,
# one held per rep, a reclaimed one given at once to the team's next rep in turn.
GOLDEN_POOL_RULE = PoolRule.model_validate(
    {
        "id": "golden-foreign-smb",
        "match": {"tier": "SMB", "ownership": "FOREIGN"},
        "max_held": 1,
        "redistribute": "round_robin",
    }
)


def golden_rules() -> Rulebook:
    """The shipped rules file, with `GOLDEN_POOL_RULE` after its pool rules."""
    shipped = load_rulebook()
    pool = shipped.pool.model_copy(update={"rules": (*shipped.pool.rules, GOLDEN_POOL_RULE)})
    return shipped.model_copy(update={"pool": pool})


class Clock:
    """The service's clock: every command happens at a known moment."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, by: timedelta = HOUR) -> datetime:
        self.now += by
        return self.now


def uscc(n: int) -> str:
    """A fixed, valid USCC per golden customer."""
    body = f"91110108MA0000{n:03d}"
    return body + stdnum_uscc.calc_check_digit(body)


def customer(n: int, name: str, tier: str, ownership: str, **extra: str) -> dict[str, str]:
    return {"uscc": uscc(n), "name": name, "tier": tier, "ownership": ownership, **extra}


def oid(name: str) -> UUID:
    return Opportunity.new_id("golden", name)


@dataclass
class Recorder:
    """Gives commands to the service in-process, each at the next moment of the clock."""

    http: TestClient
    api: Api
    clock: Clock

    @property
    def app(self) -> OpportunityApp:
        return self.api.app

    def principal(self, principal_id: str) -> Principal:
        found = self.api.principal(TOKENS[principal_id])
        assert found is not None, principal_id
        return found

    def create(
        self,
        name: str,
        principal_id: str,
        buyer: dict[str, str],
        *,
        occurred_at: datetime | None = None,
        **fields: Any,
    ) -> UUID:
        """Created through the application with a fixed id (the API draws a random one), with
        the owner and team the API would give, as `principal_id`."""
        self.clock.tick()
        who = self.principal(principal_id)
        ctx = self.api.context(who, occurred_at, None)
        owner = fields.pop("owner_id", who.id if who.role is Role.REP else None)
        team = fields.pop("team_id", who.team_id)
        new = NewOpportunity(
            id=oid(name),
            type=fields.pop("type", "new"),
            customer=Customer.model_validate(buyer),
            owner_id=owner,
            team_id=team,
            **fields,
        )
        return self.run(lambda uow: self.app.create(uow, new, ctx)).id

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        return self.app.run(work)

    def command(
        self,
        opportunity_id: UUID,
        command: str,
        principal_id: str,
        body: dict[str, Any] | None = None,
        *,
        after: timedelta = HOUR,
        key: str | None = None,
        replayed: bool = False,
    ) -> dict[str, Any]:
        self.clock.tick(after)
        headers = auth(principal_id)
        if key is not None:
            headers["Idempotency-Key"] = key
        if command == "update":
            answer = self.http.patch(f"/opportunities/{opportunity_id}", json=body, headers=headers)
        else:
            path = f"/opportunities/{opportunity_id}/{command}"
            answer = self.http.post(path, json=body or {}, headers=headers)
        assert answer.is_success, f"{command}: {answer.status_code} {answer.text}"
        assert (answer.headers.get("Idempotent-Replayed") == "true") == replayed
        state: dict[str, Any] = answer.json()
        return state

    def send(
        self, method: str, path: str, principal_id: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Any other command of the API (customers, targets, competitions), at the next hour."""
        self.clock.tick()
        answer = self.http.request(method, path, json=body, headers=auth(principal_id))
        assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
        state: dict[str, Any] = answer.json()
        return state


def record(r: Recorder) -> None:
    """Every event type, every status, both ways of reclaiming and of assigning."""
    rep1, rep2, boss = "rep-1", "rep-2", "manager-east"
    star = customer(
        1, "北京星河科技有限公司", "KA", "SOE", industry="manufacturing", region="north"
    )

    # Won after a full sale: info, people, competitors, documents, a step back, a win with
    # contract dates (the index is released, the customer account records the contract).
    won = r.create(
        "won",
        rep1,
        star,
        title="ERP rollout",
        amount=Decimal("120000.00"),
        expected_close_on=date(2026, 12, 31),
        source="web",
    )
    r.command(won, "advance", rep1, {"to_stage": "requirements"})
    r.command(won, "follow-ups", rep1, {"kind": "call", "note": "需求访谈 / requirements call"})
    r.command(
        won,
        "update",
        rep1,
        {
            "title": "ERP rollout, phase 1",
            "amount": "150000.50",
            "region": "华北",
            "expected_close_on": None,
        },
    )
    r.command(
        won,
        "key-persons",
        rep1,
        {"name": "王芳", "title": "CIO", "role": "decision_maker", "email": "wang@example.com"},
    )
    r.command(
        won, "competitors", rep1, {"name": "Rival Ltd", "strengths": "price", "weaknesses": "SLA"}
    )
    r.command(
        won,
        "documents",
        rep1,
        {"name": "proposal v1", "kind": "proposal", "url": "https://files.example.com/p1.pdf"},
    )
    r.command(won, "advance", rep1, {"to_stage": "proposal"}, after=2 * DAY)
    r.command(won, "revert", rep1, {"to_stage": "requirements", "reason": "scope changed"})
    for stage in ("proposal", "negotiation", "signing"):
        r.command(won, "advance", rep1, {"to_stage": stage}, after=DAY)
    r.command(
        won,
        "win",
        rep1,
        {
            "amount": "148000.00",
            "contract_ref": "HT-2026-001",
            "contract_start_on": "2027-01-01",
            "contract_end_on": "2027-12-31",
        },
    )
    r.command(
        won,
        "documents",
        rep1,
        {"name": "contract", "kind": "contract", "url": "https://files.example.com/ht1.pdf"},
    )

    # The reminders service asks for the renewal (its id comes from the won one's).
    r.clock.tick()
    renewal = CreateRenewalCommand(
        command_id="golden-renewal-1",
        command="create_renewal",
        opportunity_id=str(won),
        issued_at=r.clock.now,
    )
    assert r.run(lambda uow: r.app.create_renewal(uow, renewal, Context(REMINDERS, r.clock()))) == (
        "created"
    )

    # A qualified lead of the same customer, whose contract runs: a resale, pooled; claimed
    # (under the shipped KA pool rule: the rep's ledger records the claim).
    r.clock.tick()
    lead = QualifiedLead(
        lead_id="golden-lead-1",
        qualified_at=r.clock.now - 2 * HOUR,
        customer=Customer.model_validate(star),
        team_id="east",
        expected_amount=Decimal("30000.00"),
        currency="CNY",
        source="trade fair",
    )
    taken = r.run(
        lambda uow: r.app.take_lead(
            uow, lead, Context(INTAKE, r.clock(), occurred_at=min(lead.qualified_at, r.clock()))
        )
    )
    assert taken.outcome == "created", taken
    r.command(UUID(taken.opportunity_id), "claim", rep2)

    # Paused, resumed, deferred, lost from deferred to a competitor.
    lost = r.create(
        "lost", rep2, customer(2, "Small Shop Co", "SMB", "PRIVATE"), amount=Decimal("8000")
    )
    r.command(lost, "pause", rep2, {"reason": "budget freeze", "until": "2026-12-01"})
    r.command(lost, "resume", rep2, after=3 * DAY)
    r.command(lost, "defer", rep2, {"reason": "fiscal_year", "revisit_on": "2027-03-01"})
    r.command(lost, "lose", rep2, {"reason": "competitor", "competitor": "Rival Ltd"}, after=DAY)

    # Deferred, reactivated, advanced over a skippable stage under an Idempotency-Key (sent
    # twice: the second answer is the remembered one, nothing more is recorded).
    skipping = r.create("reactivated", rep1, customer(3, "Foreign Trade GmbH", "KA", "FOREIGN"))
    r.command(
        skipping,
        "defer",
        rep1,
        {"reason": "other", "note": "reorganisation", "revisit_on": "2026-12-20"},
    )
    r.command(skipping, "reactivate", rep1, after=5 * DAY)
    first = r.command(
        skipping, "advance", rep1, {"to_stage": "proposal"}, key="golden-key-1", after=HOUR
    )
    again = r.command(
        skipping, "advance", rep1, {"to_stage": "proposal"}, key="golden-key-1", replayed=True
    )
    assert first == again

    # Reclaimed by a manager into the pool, assigned back out.
    pooled = r.create("reclaimed", rep2, customer(4, "Other Things Ltd", "SMB", "OTHER"))
    r.command(pooled, "follow-ups", rep2, {"kind": "email", "note": "sent brochure"})
    r.command(pooled, "reclaim", boss, {"reason": "no follow-up for weeks"}, after=20 * DAY)
    r.command(pooled, "assign", boss, {"owner_id": rep1})

    # Reclaimed by a reminder rule (rule and command ids recorded); an admin assigns it to
    # a rep of another team, so its team changes too.
    ruled = r.create("reclaimed-by-rule", rep1, customer(8, "Quiet Buyer Co", "KA", "PRIVATE"))
    r.clock.tick(31 * DAY)
    reclaim = ReclaimCommand(
        command_id="golden-reclaim-1",
        command="reclaim",
        opportunity_id=str(ruled),
        reason="no progress for 30 days",
        rule_id="ka-default",
        issued_at=r.clock.now,
        based_on_version=1,
    )
    outcome = r.run(
        lambda uow: r.app.reclaim_unless_progressed(uow, reclaim, Context(REMINDERS, r.clock()))
    )
    assert outcome == "reclaimed", outcome
    r.command(ruled, "assign", "admin", {"owner_id": "rep-3"})

    # Paused then voided (a mistake); the customer's next opportunity of the type retakes
    # the index.
    mistaken = customer(6, "Duplicate Entry Co", "KA", "SOE")
    voided = r.create("voided", boss, mistaken, owner_id=rep2)
    r.command(voided, "pause", rep2, {"reason": "waiting for the customer"})
    r.command(voided, "void", boss, {"reason": "entered twice"})
    r.create("retaken", rep2, mistaken, title="the right one")

    # History imported by a service principal: every moment given as occurred_at.
    long_ago = START - 60 * DAY
    imported = r.create(
        "imported",
        "service",
        customer(7, "Imported Industries", "SMB", "SOE"),
        occurred_at=long_ago,
        owner_id="rep-3",
        team_id="west",
        amount=Decimal("5000.00"),
        source="legacy crm",
    )
    steps: list[tuple[str, dict[str, Any]]] = [
        ("advance", {"to_stage": "requirements"}),
        ("follow-ups", {"kind": "meeting", "note": "kick-off"}),
        ("lose", {"reason": "price"}),
    ]
    for n, (name, body) in enumerate(steps, start=1):
        at = (long_ago + n * 3 * DAY).isoformat()
        r.command(imported, name, "service", {**body, "occurred_at": at})

    # Long-lived: 25 follow-ups, so version 25 is snapshotted and one event follows it.
    busy = r.create("snapshotted", rep1, customer(5, "Busy Account Co", "KA", "PRIVATE"))
    kinds = ("call", "visit", "meeting", "email", "other")
    for n in range(25):
        r.command(busy, "follow-ups", rep1, {"kind": kinds[n % 5], "note": f"touch {n + 1}"})

    # Created by a manager without an owner: pooled, and left so.
    r.create("pooled", "manager-west", customer(9, "West Pool Co", "KA", "SOE"))

    record_customers(r, star)
    record_pool(r)
    record_plans(r, won, skipping)

    # The listings (tables of ours in the store's database) caught up to the end.
    for path in ("/opportunities", "/customers", "/targets", "/competitions"):
        listed = r.http.get(path, params={"limit": 500}, headers=auth("admin"))
        assert listed.status_code == 200, listed.text


def record_customers(r: Recorder, star: dict[str, str]) -> None:
    """A customer's decision chain kept on its record: two more key persons, one reporting to
    the other; a change; the middle one removed (whoever reported to them moves up). Another
    opportunity of a known customer gives it a new region (the profile changes)."""
    people = f"/customers/{star['uscc']}/key-persons"
    cto = r.send(
        "POST",
        people,
        "rep-1",
        {
            "name": "李强",
            "title": "CTO",
            "role": "influencer",
            "stance": "neutral",
            "reports_to": "1",
        },
    )
    r.send("PATCH", f"{people}/{cto['id']}", "rep-1", {"stance": "supporter", "phone": None})
    architect = r.send(
        "POST",
        people,
        "rep-1",
        {"name": "Anna Berg", "role": "user", "reports_to": cto["id"], "note": "架构师"},
    )
    assert architect["reports_to"] == cto["id"], architect
    r.send("DELETE", f"{people}/{cto['id']}", "manager-east")
    r.create(
        "profiled",
        "rep-2",
        customer(2, "Small Shop Co", "SMB", "PRIVATE", region="华东"),
        title="second try",
    )


def record_pool(r: Recorder) -> None:
    """Under `GOLDEN_POOL_RULE`: a manager assigns a pooled opportunity to a rep at the rule's
    max_held (the override recorded), then reclaims the rep's other one, which the rule gives
    at once to the team's next rep in turn (the rule id recorded; the team's cursor and the
    rep's ledger written)."""
    boss = "manager-east"
    held = r.create("held", "rep-4", customer(10, "Harbour Imports GmbH", "SMB", "FOREIGN"))
    over = r.create("overridden", boss, customer(11, "Alpine Tools AG", "SMB", "FOREIGN"))
    assigned = r.command(over, "assign", boss, {"owner_id": "rep-4", "override": True})
    assert assigned["owner_id"] == "rep-4", assigned
    given = r.command(held, "reclaim", boss, {"reason": "rep-4 holds more than the rule allows"})
    assert (given["status"], given["owner_id"]) == ("open", "rep-1"), given


def record_plans(r: Recorder, won: UUID, skipping: UUID) -> None:
    """A manager's forecast category set on one opportunity and cleared on another; the
    quarter's targets (the company's and a team's set, a rep's allocated, the team's
    adjusted) and a competition."""
    r.command(skipping, "update", "manager-east", {"forecast_category": "commit"})
    renewal = Opportunity.new_id("renewal", str(won))
    r.command(renewal, "update", "manager-east", {"forecast_category": "best_case"})
    r.command(renewal, "update", "admin", {"forecast_category": None})
    quarter = "/targets/2026-Q4"
    r.send(
        "PUT", f"{quarter}/company/oppstream", "admin", {"metric": "won_amount", "value": "900000"}
    )
    r.send("PUT", f"{quarter}/team/east", "admin", {"metric": "won_amount", "value": "500000"})
    r.send(
        "PUT",
        f"{quarter}/rep/rep-1",
        "manager-east",
        {"metric": "won_amount", "value": "200000", "reason": "rep-1's share"},
    )
    r.send(
        "PUT",
        f"{quarter}/team/east",
        "admin",
        {"metric": "won_amount", "value": "550000.50", "reason": "a bigger plan"},
    )
    r.send(
        "POST",
        "/competitions",
        "admin",
        {
            "id": "golden-q4-sprint",
            "name": "Q4 冲刺 sprint",
            "metric": "won_amount",
            "from": "2026-10-01",
            "to": "2027-01-01T00:00:00+08:00",
            "team_ids": ["west", "east"],
            "tiers": ["KA"],
            "types": ["new", "resale"],
        },
    )


def record_store(store_url: str) -> None:
    clock = Clock(START)
    service = build_app(
        Settings(eventstore_url=store_url),
        rules=golden_rules(),
        principals=PRINCIPALS,
        clock=clock,
    )
    with TestClient(service) as http:
        record(Recorder(http, service.state.api, clock))


def pg_dump(url: str, target: Path) -> None:
    """The database as SQL; without pg_dump's per-run `\\restrict` key, so the file is the
    same SQL each time and runs outside psql too."""
    dumped = subprocess.run(
        ["pg_dump", "--no-owner", "--no-privileges", "--inserts", "--dbname", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = [
        line for line in dumped.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
    ]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_back(store_url: str, release: Path, kind: str, workdir: Path) -> dict[str, Any]:
    """What this code reads from the store; the relay's feed written beside it."""
    with reading.opened(store_url) as app:
        aggregates = reading.replayed(app)
        items = reading.feed(app)
        won = reading.won_messages(app, items)
    reading.write_json(release / reading.notifications_file(kind), {"items": items, "won": won})
    projected = reading.project([i["envelope"] for i in items], workdir / kind)
    assert projected.outcome.not_projected == 0, "an event type the projections do not know"
    return {"aggregates": aggregates, "bi_opportunity": projected.bi_opportunity}


def write(release: Path) -> None:
    release.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        recorded = workdir / "store" / "eventstore.db"
        record_store(f"sqlite:///{recorded}")
        reading.checkpointed(recorded, release / reading.SQLITE_STORE)
        with fresh_database("oppstream_golden") as url:
            record_store(url)
            pg_dump(url, release / reading.POSTGRES_STORE)

        results = {
            "sqlite": read_back(reading.sqlite_copy(release, workdir), release, "sqlite", workdir),
        }
        with fresh_database("oppstream_golden_check") as url:
            reading.load_postgres(release, url)
            results["postgres"] = read_back(url, release, "postgres", workdir)
    assert results["sqlite"] == results["postgres"], "the two stores replay differently"
    reading.write_json(release / reading.AGGREGATES, results["sqlite"]["aggregates"])
    reading.write_json(release / reading.BI_OPPORTUNITY, results["sqlite"]["bi_opportunity"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", help="the release recording the store, e.g. v0.5.0")
    parser.add_argument(
        "--replace", action="store_true", help="write again a release's store already kept"
    )
    args = parser.parse_args(argv)
    release = reading.GOLDEN / args.release
    if release.exists():
        if not args.replace:
            print(f"{release} exists: a kept golden store is not rewritten (--replace)")
            return 1
        shutil.rmtree(release)
    write(release)
    for path in sorted(release.iterdir()):
        print(f"{path.stat().st_size:>8,}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
