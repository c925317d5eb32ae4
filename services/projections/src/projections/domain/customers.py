"""A customer record's events (SPEC §8.1) applied to its `bi_customer` and `bi_key_person`
rows, in version order; pure.

A customer record is an aggregate of its own (contracts.customer_record): its events share
the events topic with the opportunities', not their projection. They are taken exactly once
in effect the same way: each record's versions are applied in order from the one after its
row's; a version already applied is a duplicate; a version that skips ahead is a gap, and
the record's later events wait (apart from the opportunities' held events) until the missing
one arrives. An event whose payload the contract refuses is poison: the store keeps it aside
and it only moves the version on (a refused `CustomerRecorded` starts nothing). A `Customer…`
type this version does not know moves the version on and changes nothing (not projected).
"""

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from pydantic import ValidationError

from contracts.customer import Customer
from contracts.customer_record import (
    CUSTOMER_PAYLOADS,
    CustomerKeyPersonAddedV1,
    CustomerKeyPersonChangedV1,
    CustomerKeyPersonRemovedV1,
    CustomerPayload,
    CustomerProfiledV1,
    CustomerRecordedV1,
    KeyPerson,
)
from contracts.envelope import Envelope
from projections.domain.ordering import Counts, candidates
from projections.domain.projection import RecordedCustomer

log = logging.getLogger(__name__)


class _Recorded(CustomerRecordedV1):
    customer: RecordedCustomer


class _Profiled(CustomerProfiledV1):
    customer: RecordedCustomer


# The payload models the projection reads: the contract's, the customers' USCC not checked again.
_MODELS: dict[str, type[CustomerPayload]] = {
    **CUSTOMER_PAYLOADS,
    "CustomerRecorded": _Recorded,
    "CustomerProfiled": _Profiled,
}
_PERSON_FIELDS = tuple(KeyPerson.model_fields)


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """One `bi_customer` row: field names are its column names."""

    uscc: str
    record_id: str
    name: str
    tier: str
    ownership: str
    industry: str | None
    region: str | None
    registered_capital: Decimal | None
    employees: int | None
    annual_revenue: Decimal | None
    classified_by: str | None
    key_persons: int
    recorded_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class KeyPersonRow:
    """One `bi_key_person` row: field names are its column names."""

    uscc: str
    person_id: str
    name: str
    title: str | None
    role: str
    stance: str
    reports_to: str | None
    phone: str | None
    email: str | None
    note: str | None
    added_through: str | None
    added_at: datetime
    changed_at: datetime | None = None
    removed_at: datetime | None = None


CUSTOMER_FIELDS = tuple(f.name for f in fields(CustomerRow))
KEY_PERSON_FIELDS = tuple(f.name for f in fields(KeyPersonRow))
customer_values = attrgetter(*CUSTOMER_FIELDS)
key_person_values = attrgetter(*KEY_PERSON_FIELDS)


class Refused(Exception):
    """The contract refuses the event's payload; the message says where and why."""


@dataclass(frozen=True)
class Step:
    """The customer's row after one event, the key person rows it changed, and whether it
    changed anything it is about (False: an unknown type, a key person never added)."""

    customer: CustomerRow
    persons: tuple[KeyPersonRow, ...] = ()
    projected: bool = True


def step(
    customer: CustomerRow | None, persons: Mapping[str, KeyPersonRow], event: Envelope
) -> Step | None:
    """The rows after `event`, whose version is the one after `customer`'s; `persons` are the
    customer's key persons by id. None when the event cannot start a record (only a
    `CustomerRecorded` can); raises `Refused` when the contract refuses its payload."""
    model = _MODELS.get(event.event_type)
    payload: CustomerPayload | None = None
    if model is not None:
        try:
            payload = model.model_validate(event.payload)
        except ValidationError as exc:
            raise Refused(_first_problem(exc)) from None
    if customer is None:
        return Step(_recorded(event, payload)) if isinstance(payload, _Recorded) else None
    moved, at = replace(customer, version=event.version), event.occurred_at
    if isinstance(payload, CustomerRecordedV1 | CustomerProfiledV1):
        return Step(replace(moved, **_profile(payload.customer), updated_at=at))
    if isinstance(payload, CustomerKeyPersonAddedV1):
        return _added(moved, persons.get(payload.person_id), payload, at)
    if isinstance(payload, CustomerKeyPersonChangedV1):
        before = persons.get(payload.person_id)
        if before is None:
            return _unknown_person(moved, event, payload.person_id)
        person = replace(before, **_merged(before, payload.changes), changed_at=at)
        return Step(replace(moved, updated_at=at), (person,))
    if isinstance(payload, CustomerKeyPersonRemovedV1):
        before = persons.get(payload.person_id)
        if before is None:
            return _unknown_person(moved, event, payload.person_id)
        if before.removed_at is not None:
            return Step(moved)
        removed = replace(moved, key_persons=max(moved.key_persons - 1, 0), updated_at=at)
        return Step(removed, (replace(before, removed_at=at),))
    return Step(moved, projected=False)


def _recorded(e: Envelope, p: _Recorded) -> CustomerRow:
    return CustomerRow(
        uscc=p.uscc,
        record_id=e.opportunity_id,
        **_profile(p.customer),
        key_persons=0,
        recorded_at=e.occurred_at,
        updated_at=e.occurred_at,
        version=e.version,
    )


def _profile(c: Customer) -> dict[str, Any]:
    return {
        "name": c.name,
        "tier": c.tier.value,
        "ownership": c.ownership.value,
        "industry": c.industry,
        "region": c.region,
        "registered_capital": c.registered_capital,
        "employees": c.employees,
        "annual_revenue": c.annual_revenue,
        "classified_by": c.classified_by,
    }


def _person(p: KeyPerson) -> dict[str, Any]:
    found = {name: getattr(p, name) for name in _PERSON_FIELDS}
    found["role"], found["stance"] = p.role.value, p.stance.value
    return found


def _added(
    customer: CustomerRow, before: KeyPersonRow | None, p: CustomerKeyPersonAddedV1, at: datetime
) -> Step:
    person = KeyPersonRow(
        uscc=customer.uscc,
        person_id=p.person_id,
        **_person(p.person),
        added_through=p.opportunity_id,
        added_at=at,
    )
    current = before is not None and before.removed_at is None
    count = customer.key_persons + (0 if current else 1)
    return Step(replace(customer, key_persons=count, updated_at=at), (person,))


def _merged(before: KeyPersonRow, changes: Mapping[str, str | None]) -> dict[str, Any]:
    """The key person's fields with `changes` made, as the contract takes a key person: None
    clears a field (to its default: a stance becomes unknown; a name or role cannot be
    cleared). Names the contract does not know are left alone."""
    current: dict[str, Any] = {name: getattr(before, name) for name in _PERSON_FIELDS}
    for name, text in changes.items():
        if name in current:
            current[name] = _cleared(name) if text is None else text
    try:
        return _person(KeyPerson.model_validate(current))
    except ValidationError as exc:
        raise Refused(_first_problem(exc, "changes")) from None


def _cleared(name: str) -> Any:
    info = KeyPerson.model_fields[name]
    return None if info.is_required() else info.default


def _unknown_person(customer: CustomerRow, e: Envelope, person_id: str) -> Step:
    log.warning(
        "event %s (%s v%d of customer record %s) names key person %s, never added; nothing changed",
        e.event_id,
        e.event_type,
        e.version,
        e.opportunity_id,
        person_id,
    )
    return Step(customer, projected=False)


def _first_problem(exc: ValidationError, within: str = "") -> str:
    problem = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    where = ".".join(str(part) for part in (within, *problem["loc"]) if part != "")
    return f"{where or '(payload)'}: {problem['msg']}"


@dataclass
class CustomerChanges(Counts):
    """What a batch's customer events changed, for the store to write; `poison` counts the
    events whose payload the contract refused (listed in `refused` with why)."""

    poison: int = 0
    # The records whose row changed, by record id; the key persons changed, by (uscc, id).
    customers: dict[str, CustomerRow] = field(default_factory=dict)
    persons: dict[tuple[str, str], KeyPersonRow] = field(default_factory=dict)
    # The events that moved a version on (for `bi_event`), each with whether it is projected.
    events: list[tuple[Envelope, bool]] = field(default_factory=list)
    refused: list[tuple[Envelope, str]] = field(default_factory=list)
    # Events newly held for a missing version; ids of held events now applied or passed.
    holds: list[Envelope] = field(default_factory=list)
    released_ids: list[str] = field(default_factory=list)


def customers_in_order(
    customers: Mapping[str, CustomerRow],
    persons: Mapping[str, Mapping[str, KeyPersonRow]],
    held: Mapping[str, Mapping[int, Envelope]],
    events: Sequence[Envelope],
) -> CustomerChanges:
    """Apply `events` to the stored rows (`customers` by record id, their key `persons` by
    USCC and person id), together with the events `held` before, each record's versions in
    order from the one after its row's."""
    changes = CustomerChanges()
    by_record: dict[str, list[Envelope]] = defaultdict(list)
    for event in events:
        by_record[event.opportunity_id].append(event)
    for record_id, arrived in by_record.items():
        customer = customers.get(record_id)
        known = persons.get(customer.uscc, {}) if customer is not None else {}
        _one(changes, record_id, customer, known, held.get(record_id, {}), arrived)
    return changes


def _one(
    changes: CustomerChanges,
    record_id: str,
    customer: CustomerRow | None,
    known: Mapping[str, KeyPersonRow],
    waiting: Mapping[int, Envelope],
    arrived: list[Envelope],
) -> None:
    by_version, repeated = candidates(waiting, arrived)
    changes.duplicates += repeated
    persons = dict(known)
    expected = 1 if customer is None else customer.version + 1
    for version in sorted(by_version):
        event, was_held = by_version[version]
        if version < expected:
            if was_held:
                changes.released_ids.append(event.event_id)
            else:
                changes.duplicates += 1
            continue
        if version > expected:
            break
        try:
            stepped = step(customer, persons, event)
        except Refused as exc:
            _refuse(changes, event, str(exc))
            del by_version[version]
            if was_held:
                changes.released_ids.append(event.event_id)
            if customer is not None:  # the record goes on; a refused creation starts nothing
                customer = replace(customer, version=version)
                changes.customers[record_id] = customer
                changes.events.append((event, False))
                expected = version + 1
            continue
        if stepped is None:
            log.warning(
                "event %s v%d of customer record %s cannot start it (%s); held",
                event.event_id,
                version,
                record_id,
                event.event_type,
            )
            break
        customer = stepped.customer
        changes.customers[record_id] = customer
        for person in stepped.persons:
            persons[person.person_id] = person
            changes.persons[(person.uscc, person.person_id)] = person
        changes.applied += 1
        if not stepped.projected:
            changes.not_projected += 1
        if was_held:
            changes.released_ids.append(event.event_id)
            changes.released += 1
        changes.events.append((event, stepped.projected))
        expected = version + 1
    new_holds = [e for v, (e, was_held) in by_version.items() if v >= expected and not was_held]
    if new_holds:
        changes.held += len(new_holds)
        changes.holds.extend(new_holds)
        if not waiting:
            changes.gaps += 1
            log.warning(
                "version gap for customer record %s: applied up to v%d, got v%s; "
                "holding its later events until v%d arrives",
                record_id,
                expected - 1,
                ",".join(str(e.version) for e in new_holds),
                expected,
            )


def _refuse(changes: CustomerChanges, event: Envelope, why: str) -> None:
    log.warning(
        "event %s (%s v%d of customer record %s) has a payload the contract refuses, kept "
        "as poison: %s",
        event.event_id,
        event.event_type,
        event.version,
        event.opportunity_id,
        why,
    )
    changes.poison += 1
    changes.refused.append((event, f"{event.event_type} v{event.version}: refused: {why}"))
