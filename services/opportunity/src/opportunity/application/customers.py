"""The customer records (SPEC §8.1): the use cases that record a customer and its key persons
(part of OpportunityApp, each inside a unit of work), who may read or change a customer, and the
customer as the API shows it."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from chassis.auth import Principal
from contracts.customer_record import KeyPerson, KeyPersonRole
from contracts.opportunity import Status
from opportunity.application.event_log import EventLog
from opportunity.application.unit_of_work import (
    Context,
    NotFound,
    UnitOfWork,
    VersionMismatch,
)
from opportunity.application.views import state_of
from opportunity.domain import access
from opportunity.domain.customer_record import CustomerRecord
from opportunity.domain.opportunity import Opportunity

# The profile fields the API shows, after the uscc.
PROFILE_FIELDS = (
    "name",
    "tier",
    "ownership",
    "industry",
    "region",
    "classified_by",
    "registered_capital",
    "employees",
    "annual_revenue",
)
_ROLES = frozenset(role.value for role in KeyPersonRole)
# The longest note a customer's key person keeps (contracts.customer_record.Note); an
# opportunity's key person may bring a longer one.
_NOTE_MAX = 2000


class CustomerRecords(EventLog):
    """The customer records' use cases and queries."""

    def record_customer(
        self, uow: UnitOfWork, customer: dict[str, Any], at: datetime, actor: str
    ) -> None:
        """An opportunity of the customer was created: record its profile the first time,
        else merge it into the known one."""
        record = uow.find(CustomerRecord.create_id(customer["uscc"]), CustomerRecord)
        if record is None:
            uow.add(CustomerRecord(uscc=customer["uscc"], customer=customer, at=at, actor=actor))
        else:
            record.reprofile(customer, at, actor)

    def add_customer_key_person(
        self, uow: UnitOfWork, uscc: str, person: KeyPerson, ctx: Context
    ) -> dict[str, Any]:
        record = self._changing_record(uow, uscc, ctx)
        person_id = record.add_key_person(
            person.model_dump(mode="json"), ctx.at(), ctx.principal.id
        )
        return _person_answer(record, person_id)

    def change_customer_key_person(
        self,
        uow: UnitOfWork,
        uscc: str,
        person_id: str,
        fields: Mapping[str, object],
        ctx: Context,
    ) -> dict[str, Any]:
        """Change the named fields of a key person (None clears an optional one)."""
        record = self._changing_record(uow, uscc, ctx)
        changes = {name: None if value is None else str(value) for name, value in fields.items()}
        record.change_key_person(person_id, changes, ctx.at(), ctx.principal.id)
        return _person_answer(record, person_id)

    def remove_customer_key_person(
        self, uow: UnitOfWork, uscc: str, person_id: str, ctx: Context
    ) -> dict[str, Any]:
        """Remove a key person; the answer lists the key persons left (reports moved up)."""
        record = self._changing_record(uow, uscc, ctx)
        record.remove_key_person(person_id, ctx.at(), ctx.principal.id)
        return {
            "id": person_id,
            "uscc": uscc,
            "version": record.version,
            "key_persons": record.shown_key_persons(),
        }

    def add_key_person_through(
        self, uow: UnitOfWork, opportunity: Opportunity, person: dict[str, Any], ctx: Context
    ) -> None:
        """A key person added to an opportunity (`customer_key_person`) joins its customer's
        key persons; the record starts from the opportunity's customer if it has none yet."""
        customer = opportunity.customer
        at, actor = ctx.at(opportunity), ctx.principal.id
        record = uow.find(CustomerRecord.create_id(customer["uscc"]), CustomerRecord)
        if record is None:
            record = CustomerRecord(uscc=customer["uscc"], customer=customer, at=at, actor=actor)
            uow.add(record)
        record.add_key_person(person, at, actor, str(opportunity.id))

    def shown(self, uow: UnitOfWork, opportunity: Opportunity) -> dict[str, Any]:
        """The opportunity's state, its customer with the customer's current key persons."""
        state = state_of(opportunity)
        record = uow.find(CustomerRecord.create_id(opportunity.customer["uscc"]), CustomerRecord)
        key_persons = [] if record is None else record.shown_key_persons()
        return {**state, "customer": {**state["customer"], "key_persons": key_persons}}

    def shown_now(self, opportunity: Opportunity) -> dict[str, Any]:
        return self.shown(UnitOfWork(self), opportunity)

    def customer_record(self, uscc: str) -> CustomerRecord:
        found = UnitOfWork(self).find(CustomerRecord.create_id(uscc), CustomerRecord)
        if found is None:
            raise NotFound(f"no customer {uscc}", uscc=uscc)
        return found

    def _changing_record(self, uow: UnitOfWork, uscc: str, ctx: Context) -> CustomerRecord:
        """The customer record, once `If-Match`, if given, names its version."""
        record = uow.find(CustomerRecord.create_id(uscc), CustomerRecord)
        if record is None:
            raise NotFound(f"no customer {uscc}", uscc=uscc)
        if ctx.if_match is not None and ctx.if_match != record.version:
            raise VersionMismatch(
                f"If-Match names version {ctx.if_match}; the customer is at "
                f"version {record.version}",
                expected=ctx.if_match,
                current=record.version,
            )
        return record


def customer_key_person(person: Mapping[str, Any]) -> dict[str, Any]:
    """An opportunity's key person as a customer's: its free-text role becomes one of the
    roles, or `other` with the text kept at the head of the note."""
    role, note = person.get("role"), person.get("note")
    if role is not None and role not in _ROLES:
        note = f"role: {role}" if not note else f"role: {role}\n{note}"
    return KeyPerson(
        name=person["name"],
        title=person.get("title"),
        role=KeyPersonRole(role) if role in _ROLES else KeyPersonRole.OTHER,
        phone=person.get("phone"),
        email=person.get("email"),
        note=None if note is None else note[:_NOTE_MAX],
    ).model_dump(mode="json")


def customer_state(record: CustomerRecord) -> dict[str, Any]:
    """The customer as its listing shows it: profile, key persons, version."""
    profile = record.profile
    return {
        "uscc": record.uscc,
        **{name: profile.get(name) for name in PROFILE_FIELDS},
        "key_persons": record.shown_key_persons(),
        "version": record.version,
    }


def _person_answer(record: CustomerRecord, person_id: str) -> dict[str, Any]:
    person = next(p for p in record.shown_key_persons() if p["id"] == person_id)
    return {**person, "uscc": record.uscc, "version": record.version}


class CustomerOpportunities(Protocol):
    """Where the opportunities of a customer are found (the listing)."""

    def of_customer(self, uscc: str) -> list[dict[str, Any]]:
        """The states of the customer's opportunities, newest first."""
        ...


class CustomerQueries:
    """The customer as `GET /customers/{uscc}` shows it, and who may read or change it."""

    def __init__(self, records: CustomerRecords, opportunities: CustomerOpportunities) -> None:
        self._records, self._opportunities = records, opportunities

    def customer(self, uscc: str, principal: Principal) -> dict[str, Any]:
        record = self._records.customer_record(uscc)
        listed = self._opportunities.of_customer(uscc)
        access.check_read_customer(principal, _holders(listed))
        return {
            **customer_state(record),
            "opportunities": [
                {name: state[name] for name in ("id", "type", "status", "stage", "owner_id")}
                for state in listed
            ],
            "contracts": [
                {
                    "opportunity_id": state["id"],
                    "contract_ref": state["contract_ref"],
                    "amount": state["amount"],
                    "start_on": state["contract_start_on"],
                    "end_on": state["contract_end_on"],
                }
                for state in listed
                if state["status"] == Status.WON
            ],
        }

    def check_change(self, uscc: str, principal: Principal) -> None:
        """Raise NotFound for an unknown customer, Forbidden for one the principal may not
        change."""
        self._records.customer_record(uscc)
        access.check_change_customer(principal, _holders(self._opportunities.of_customer(uscc)))


def _holders(states: list[dict[str, Any]]) -> list[access.Holder]:
    return [(s["owner_id"], s["team_id"], s["status"]) for s in states]
