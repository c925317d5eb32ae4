"""Recorded events become contract envelopes (SPEC §3.1, §3.2, §8.1): every event type of an
opportunity and of a customer record, produced in an in-memory application, validates against
the contract."""

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
import pytest

from chassis.auth import Principal
from contracts.customer import Customer
from contracts.customer_record import (
    CUSTOMER_PAYLOADS,
    CustomerKeyPersonAddedV1,
    KeyPerson,
    KeyPersonRole,
)
from contracts.envelope import Envelope, event_id_for
from contracts.opportunity import PAYLOADS, OpportunityWon
from contracts.rules import Role, load_rulebook
from opportunity.adapters.translation import envelope_of, won_message
from opportunity.application.app import OpportunityApp
from opportunity.application.creating import NewOpportunity
from opportunity.application.stored_topics import OPPORTUNITY_TOPICS
from opportunity.application.unit_of_work import Context, UnitOfWork
from opportunity.domain.customer_record import CustomerRecord
from opportunity.domain.opportunity import Opportunity
from tests.support.principals import customer

ADMIN = Principal("admin", Role.ADMIN)
START = datetime(2026, 11, 28, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

Change = Callable[[Opportunity, datetime], None]


class Recorder:
    """Gives commands to an in-memory application, one minute apart."""

    def __init__(self, app: OpportunityApp) -> None:
        self.app = app
        self.now = START

    def tick(self) -> Context:
        self.now += timedelta(minutes=1)
        return Context(ADMIN, self.now)

    def create(self, **fields: Any) -> UUID:
        new = NewOpportunity(
            type="new",
            customer=Customer.model_validate(customer(industry="manufacturing")),
            owner_id="rep-1",
            team_id="east",
            **fields,
        )
        ctx = self.tick()
        created = self.app.run(lambda uow: self.app.create(uow, new, ctx))
        return created.id

    def act(self, oid: UUID, change: Change) -> None:
        """`change` on the aggregate itself, so each event carries exactly the values given."""
        ctx = self.tick()

        def work(uow: UnitOfWork) -> None:
            opportunity = uow.get(oid)
            change(opportunity, ctx.at(opportunity))

        self.app.run(work)


@pytest.fixture
def app() -> Iterator[OpportunityApp]:
    application = OpportunityApp(load_rulebook(), env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield application
    application.close()


def record_every_event_type(app: OpportunityApp) -> tuple[UUID, list[UUID]]:
    """One opportunity through most of its lifecycle to a win; one lost; one voided.
    Returns the won one's id and all ids."""
    r = Recorder(app)
    pipeline = app.rules.pipeline_for("new", "KA")
    rules = app.rules
    won = r.create(
        title="ERP rollout",
        amount=Decimal("120000.00"),
        expected_close_on=date(2027, 3, 31),
        source="lead",
        lead_id="lead-7",
    )
    r.act(won, lambda o, at: o.advance(pipeline, "requirements", "admin", at, "admin"))
    r.act(
        won,
        lambda o, at: o.revert(pipeline, "initial_contact", "scope unclear", "admin", at, "admin"),
    )
    # Skips `requirements`, which the default rules allow.
    r.act(won, lambda o, at: o.advance(pipeline, "proposal", "admin", at, "admin"))
    r.act(won, lambda o, at: o.log_follow_up("visit", "met the CIO", at, "admin"))
    r.act(
        won,
        lambda o, at: o.update_info(
            {"amount": "150000.00", "expected_close_on": "2027-04-30", "region": "east"},
            at,
            "admin",
        ),
    )
    r.act(
        won,
        lambda o, at: o.add_key_person(
            {"person_id": "kp-1", "name": "Wang Wei", "title": "CIO", "role": "decision_maker"},
            at,
            "admin",
        ),
    )
    r.act(
        won,
        lambda o, at: o.record_competitor(
            {"competitor_id": "c-1", "name": "Rival Ltd", "strengths": "price"}, at, "admin"
        ),
    )
    r.act(
        won,
        lambda o, at: o.attach_document(
            {
                "document_id": "d-1",
                "name": "quote.pdf",
                "kind": "quote",
                "url": "https://files.example/quote.pdf",
            },
            at,
            "admin",
        ),
    )
    r.act(
        won,
        lambda o, at: o.pause("budget freeze", at.date() + timedelta(days=10), at, "admin"),
    )
    r.act(won, lambda o, at: o.resume(at, "admin"))
    r.act(
        won,
        lambda o, at: o.defer("tender next quarter", at.date() + timedelta(days=60), at, "admin"),
    )
    r.act(won, lambda o, at: o.reactivate(at, "admin"))
    r.act(
        won,
        lambda o, at: o.reclaim("no progress", "ka-default", "cmd-1", at, "reminders"),
    )
    r.act(won, lambda o, at: o.assign("rep-2", at, "admin", team_id="east"))
    r.act(won, lambda o, at: o.advance(pipeline, "negotiation", "admin", at, "admin"))
    r.act(won, lambda o, at: o.advance(pipeline, "signing", "admin", at, "admin"))
    r.act(
        won,
        lambda o, at: o.win(
            pipeline,
            Decimal("148000.00"),
            "HT-2026-001",
            date(2027, 1, 1),
            date(2027, 12, 31),
            at,
            "admin",
        ),
    )

    lost = r.create()
    r.act(lost, lambda o, at: o.lose(rules, "competitor", "Rival Ltd", at, "admin"))
    voided = r.create()
    r.act(voided, lambda o, at: o.pause("waiting", None, at, "admin"))
    r.act(voided, lambda o, at: o.void("entered twice", at, "admin"))
    return won, [won, lost, voided]


def envelopes(app: OpportunityApp, oid: UUID) -> list[dict[str, Any]]:
    return [envelope_of(stored) for stored in app.recorder.select_events(oid)]


def test_every_event_type_makes_an_envelope_that_validates_against_its_contract(
    app: OpportunityApp,
) -> None:
    _, ids = record_every_event_type(app)
    seen: set[str] = set()
    for oid in ids:
        for envelope in envelopes(app, oid):
            name = envelope["event_type"]
            seen.add(name)
            # What the relay puts on the wire, read back as a consumer would.
            wire = orjson.loads(orjson.dumps(envelope))
            parsed = Envelope.model_validate(wire)
            assert parsed.opportunity_id == str(oid)
            assert parsed.schema_version == 1
            assert parsed.occurred_at.tzinfo is not None
            model = PAYLOADS[name]
            model.model_validate(wire["payload"])
            # Only contract fields travel: no domain internals in the payload.
            assert set(wire["payload"]) <= set(model.model_fields), name
    assert seen == set(PAYLOADS)


def test_versions_rise_by_one_and_event_ids_are_stable(app: OpportunityApp) -> None:
    _, ids = record_every_event_type(app)
    all_ids: list[str] = []
    for oid in ids:
        first = envelopes(app, oid)
        again = envelopes(app, oid)
        assert [e["version"] for e in first] == list(range(1, len(first) + 1))
        assert [e["event_id"] for e in first] == [e["event_id"] for e in again]
        assert [e["event_id"] for e in first] == [
            event_id_for(str(oid), e["version"]) for e in first
        ]
        all_ids.extend(e["event_id"] for e in first)
    assert len(set(all_ids)) == len(all_ids)


def test_the_notification_log_gives_the_same_envelopes_as_the_history(
    app: OpportunityApp,
) -> None:
    _, ids = record_every_event_type(app)
    from_log = [envelope_of(n) for n in app.notifications(0, 1000) if n.originator_id in set(ids)]
    from_history = [e for oid in ids for e in envelopes(app, oid)]
    assert sorted(from_log, key=lambda e: e["event_id"]) == sorted(
        from_history, key=lambda e: e["event_id"]
    )


def test_created_payload_carries_the_whole_initial_state(app: OpportunityApp) -> None:
    won, _ = record_every_event_type(app)
    created = envelopes(app, won)[0]
    assert created["event_type"] == "OpportunityCreated"
    payload = created["payload"]
    assert payload["type"] == "new"
    assert payload["pipeline_id"] == "new"
    assert payload["stage"] == "initial_contact"
    assert payload["owner_id"] == "rep-1"
    assert payload["team_id"] == "east"
    assert payload["amount"] == "120000.00"
    assert payload["currency"] == "CNY"
    assert payload["expected_close_on"] == "2027-03-31"
    assert payload["lead_id"] == "lead-7"
    assert payload["customer"]["industry"] == "manufacturing"
    assert created["actor"] == "admin"


def test_reclaimed_payload_names_rule_and_command(app: OpportunityApp) -> None:
    won, _ = record_every_event_type(app)
    reclaimed = next(e for e in envelopes(app, won) if e["event_type"] == "OpportunityReclaimed")
    assert reclaimed["payload"]["rule_id"] == "ka-default"
    assert reclaimed["payload"]["command_id"] == "cmd-1"
    assert reclaimed["payload"]["previous_owner_id"] == "rep-1"
    assert reclaimed["actor"] == "reminders"


def test_won_message_validates_and_carries_the_won_event_id(app: OpportunityApp) -> None:
    won, _ = record_every_event_type(app)
    envelope = envelopes(app, won)[-1]
    assert envelope["event_type"] == "OpportunityWon"
    message = orjson.loads(orjson.dumps(won_message(envelope, app.opportunity(won))))
    parsed = OpportunityWon.model_validate(message)
    assert parsed.event_id == envelope["event_id"]
    assert parsed.opportunity_id == str(won)
    assert parsed.owner_id == "rep-2"
    assert parsed.amount == Decimal("148000.00")
    assert parsed.contract_ref == "HT-2026-001"
    assert parsed.contract_end_on == date(2027, 12, 31)
    assert parsed.won_at == datetime.fromisoformat(envelope["occurred_at"])


# -- the customer record's events (SPEC §8.1) --------------------------------------------------------


def record_every_customer_event_type(app: OpportunityApp) -> UUID:
    """A customer recorded by its first opportunity, profiled again by a second, given key
    persons (one through an opportunity), one changed and one removed. The record's id."""
    r = Recorder(app)
    profile = customer(industry="manufacturing")
    first = NewOpportunity(
        type="new", customer=Customer.model_validate(profile), owner_id="rep-1", team_id="east"
    )
    second = NewOpportunity(
        type="resale",
        customer=Customer.model_validate({**profile, "name": "ACME Group", "region": "east"}),
        owner_id="rep-1",
        team_id="east",
    )
    uscc = profile["uscc"]
    for new in (first, second):
        ctx = r.tick()
        app.run(lambda uow, new=new, ctx=ctx: app.create(uow, new, ctx))
    ctx = r.tick()
    app.run(lambda uow: app.add_key_person(uow, first.id, {"name": "王总", "role": "CEO"}, ctx))
    ctx = r.tick()
    cio = KeyPerson(name="Li", role=KeyPersonRole.INFLUENCER, reports_to="1")
    app.run(lambda uow: app.add_customer_key_person(uow, uscc, cio, ctx))
    ctx = r.tick()
    app.run(lambda uow: app.change_customer_key_person(uow, uscc, "2", {"stance": "neutral"}, ctx))
    ctx = r.tick()
    app.run(lambda uow: app.remove_customer_key_person(uow, uscc, "1", ctx))
    return CustomerRecord.create_id(uscc)


def test_every_customer_event_makes_an_envelope_its_contract_model_validates(
    app: OpportunityApp,
) -> None:
    record_id = record_every_customer_event_type(app)

    recorded = envelopes(app, record_id)

    assert [e["event_type"] for e in recorded] == [
        "CustomerRecorded",
        "CustomerProfiled",
        "CustomerKeyPersonAdded",
        "CustomerKeyPersonAdded",
        "CustomerKeyPersonChanged",
        "CustomerKeyPersonChanged",
        "CustomerKeyPersonRemoved",
    ]
    assert {e["event_type"] for e in recorded} == set(CUSTOMER_PAYLOADS)
    assert [e["version"] for e in recorded] == list(range(1, len(recorded) + 1))
    for envelope in recorded:
        wire = orjson.loads(orjson.dumps(envelope))
        parsed = Envelope.model_validate(wire)
        # The envelope's opportunity_id holds the record's id (contracts.customer_record).
        assert parsed.opportunity_id == str(record_id)
        assert parsed.event_id == event_id_for(str(record_id), parsed.version)
        model = CUSTOMER_PAYLOADS[parsed.event_type]
        payload = model.model_validate(wire["payload"])
        assert set(wire["payload"]) <= set(model.model_fields), parsed.event_type
        assert payload.uscc == recorded[0]["payload"]["uscc"]
    through_opportunity = CustomerKeyPersonAddedV1.model_validate(recorded[2]["payload"])
    assert through_opportunity.person.role is KeyPersonRole.OTHER
    assert through_opportunity.person.note == "role: CEO"
    assert through_opportunity.opportunity_id is not None
    assert recorded[1]["payload"]["customer"]["name"] == "ACME Group"
    assert recorded[1]["payload"]["customer"]["industry"] == "manufacturing"


def test_the_notification_log_carries_customer_events_the_opportunity_topics_do_not(
    app: OpportunityApp,
) -> None:
    record_id = record_every_customer_event_type(app)

    everything = {n.originator_id for n in app.notifications(0, 1000)}
    opportunities_only = {n.originator_id for n in app.notifications(0, 1000, OPPORTUNITY_TOPICS)}

    assert record_id in everything
    assert record_id not in opportunities_only
    assert opportunities_only < everything
