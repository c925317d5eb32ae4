"""The customer record's use cases (SPEC §8.1) in an in-memory application: every way an
opportunity is created records its customer in the same unit of work, and an opportunity's key
person joins its customer's as a customer's key person."""

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chassis.auth import Principal
from contracts.commands import CreateRenewalCommand
from contracts.customer import Customer
from contracts.leads import QualifiedLead
from contracts.rules import Role, load_rulebook
from opportunity.application.app import NewOpportunity, OpportunityApp
from opportunity.application.customers import customer_key_person
from opportunity.application.unit_of_work import Context, NotFound
from opportunity.domain.customer_record import CustomerRecord
from opportunity.domain.errors import DuplicateOpportunity
from services.opportunity.tests.opportunities import new_opportunity
from tests.support.principals import customer

ADMIN = Principal("admin", Role.ADMIN)
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def app() -> Iterator[OpportunityApp]:
    application = OpportunityApp(load_rulebook(), env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield application
    application.close()


def events_of(app: OpportunityApp, uscc: str) -> list[str]:
    return [type(e).__name__ for e in app.events.get(CustomerRecord.create_id(uscc))]


def create(app: OpportunityApp, profile: dict[str, Any], type_: str = "new") -> NewOpportunity:
    new = NewOpportunity(
        type=type_,
        customer=Customer.model_validate(profile),
        owner_id="rep-1",
        team_id="east",
    )
    app.run(lambda uow: app.create(uow, new, Context(ADMIN, NOW)))
    return new


def test_a_create_records_the_customer_then_profiles_it_only_when_it_differs(
    app: OpportunityApp,
) -> None:
    profile = customer(industry="manufacturing")
    create(app, profile)
    create(app, {**profile, "industry": None}, "resale")
    create(app, {**profile, "name": "ACME Group"}, "renewal")

    assert events_of(app, profile["uscc"]) == ["CustomerRecorded", "CustomerProfiled"]
    record = app.customer_record(profile["uscc"])
    assert (record.profile["name"], record.profile["industry"]) == ("ACME Group", "manufacturing")


def test_a_refused_create_records_nothing_about_the_customer(app: OpportunityApp) -> None:
    profile = customer()
    create(app, profile)

    with pytest.raises(DuplicateOpportunity):
        create(app, {**profile, "name": "Renamed"})

    assert events_of(app, profile["uscc"]) == ["CustomerRecorded"]


def test_a_lead_records_its_customer(app: OpportunityApp) -> None:
    lead = QualifiedLead(
        lead_id="lead-1",
        qualified_at=NOW,
        customer=Customer.model_validate(customer(region="north")),
        owner_id="rep-1",
        team_id="east",
    )

    app.run(lambda uow: app.take_lead(uow, lead, Context(ADMIN, NOW)))

    assert app.customer_record(lead.customer.uscc).profile["region"] == "north"


def test_a_renewal_records_its_customer_once_known_without_a_new_event(
    app: OpportunityApp,
) -> None:
    profile = customer()
    won = create(app, profile)
    pipeline = app.rules.pipeline_for("new", "KA")

    def win(uow: Any) -> None:
        o = uow.get(won.id)
        for stage in pipeline.stage_ids[1:]:
            o.advance(pipeline, stage, "admin", NOW, "admin")
        o.win(pipeline, Decimal(1000), "HT-1", None, date(2027, 12, 31), NOW, "admin")

    app.run(win)
    renewal = CreateRenewalCommand(
        command_id="c-1",
        command="create_renewal",
        opportunity_id=str(won.id),
        issued_at=NOW + timedelta(days=1),
    )

    outcome = app.run(lambda uow: app.create_renewal(uow, renewal, Context(ADMIN, NOW)))

    assert outcome == "created"
    assert events_of(app, profile["uscc"]) == ["CustomerRecorded"]


def test_an_opportunitys_key_person_starts_the_record_of_a_customer_without_one(
    app: OpportunityApp,
) -> None:
    """An opportunity recorded before customer records existed: saved alone."""
    profile = customer(industry="retail")
    old = new_opportunity(customer=profile)
    app.save(old)
    ctx = Context(ADMIN, NOW)

    app.run(lambda uow: app.add_key_person(uow, old.id, {"name": "Li", "role": "user"}, ctx))

    assert events_of(app, profile["uscc"]) == ["CustomerRecorded", "CustomerKeyPersonAdded"]
    record = app.customer_record(profile["uscc"])
    assert record.profile == profile
    assert [p["name"] for p in record.shown_key_persons()] == ["Li"]


def test_an_unknown_customer_has_no_record(app: OpportunityApp) -> None:
    with pytest.raises(NotFound):
        app.customer_record(customer()["uscc"])


@pytest.mark.parametrize(
    ("given", "role", "note"),
    [
        ({"role": "champion", "note": "ally"}, "champion", "ally"),
        ({"role": "采购总监"}, "other", "role: 采购总监"),
        ({"role": "blocker", "note": "hates us"}, "other", "role: blocker\nhates us"),
        ({}, "other", None),
        ({"role": None, "note": "n"}, "other", "n"),
    ],
)
def test_an_opportunitys_key_person_role_becomes_a_customer_role_or_other_with_a_note(
    given: dict[str, Any], role: str, note: str | None
) -> None:
    person = customer_key_person({"name": "Li", "title": "CFO", **given})

    assert (person["role"], person["note"], person["stance"]) == (role, note, "unknown")
    assert (person["name"], person["title"], person["reports_to"]) == ("Li", "CFO", None)


def test_a_note_longer_than_a_customers_key_person_keeps_is_cut() -> None:
    person = customer_key_person({"name": "Li", "role": "head of IT", "note": "x" * 5000})

    assert len(person["note"]) == 2000
    assert person["note"].startswith("role: head of IT\nxxx")
