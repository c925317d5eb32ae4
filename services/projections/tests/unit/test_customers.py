"""The customer record's projection step (pure): the profile, key persons added, changed and
removed, each record's versions in order, duplicates, gaps, poison."""

from collections.abc import Mapping
from decimal import Decimal

from contracts.customer_record import is_customer_event
from contracts.envelope import Envelope
from projections.adapters.feed import read_listed
from projections.domain.customers import (
    CustomerChanges,
    CustomerRow,
    KeyPersonRow,
    customers_in_order,
)
from services.projections.tests.customers import CustomerHistory
from services.projections.tests.history import day
from tests.support.principals import new_uscc


def envelopes(h: CustomerHistory, *versions: int) -> list[Envelope]:
    chosen = versions or tuple(range(1, len(h.envelopes) + 1))
    return [read_listed(h.envelopes[v - 1]) for v in chosen]


class Rows:
    """The stored rows, as the store would keep them between batches."""

    def __init__(self) -> None:
        self.customers: dict[str, CustomerRow] = {}
        self.persons: dict[str, dict[str, KeyPersonRow]] = {}
        self.held: dict[str, dict[int, Envelope]] = {}

    def apply(self, events: list[Envelope]) -> CustomerChanges:
        changes = customers_in_order(self.customers, self.persons, self.held, events)
        self.customers.update(changes.customers)
        for (uscc, person_id), person in changes.persons.items():
            self.persons.setdefault(uscc, {})[person_id] = person
        for event in changes.holds:
            self.held.setdefault(event.opportunity_id, {})[event.version] = event
        released = set(changes.released_ids)
        self.held = {
            record: {v: e for v, e in waiting.items() if e.event_id not in released}
            for record, waiting in self.held.items()
        }
        return changes

    def customer(self, h: CustomerHistory) -> CustomerRow:
        return self.customers[h.id]

    def person(self, h: CustomerHistory, person_id: str) -> KeyPersonRow:
        return self.persons[h.uscc][person_id]


def counts(changes: CustomerChanges) -> Mapping[str, int]:
    names = ("applied", "duplicates", "held", "released", "gaps", "not_projected", "poison")
    return {name: getattr(changes, name) for name in names if getattr(changes, name)}


def test_a_recorded_customer_gets_its_whole_profile() -> None:
    h = CustomerHistory(day(0))
    rows = Rows()

    changes = rows.apply(envelopes(h))

    assert counts(changes) == {"applied": 1}
    assert rows.customer(h) == CustomerRow(
        uscc=h.uscc,
        record_id=h.id,
        name="华东机械有限公司",
        tier="KA",
        ownership="SOE",
        industry="manufacturing",
        region="east",
        registered_capital=Decimal("50000000.00"),
        employees=1200,
        annual_revenue=Decimal("880000000.00"),
        classified_by="ka-by-revenue",
        key_persons=0,
        recorded_at=day(0),
        updated_at=day(0),
        version=1,
    )
    assert changes.events == [(envelopes(h)[0], True)]


def test_a_new_profile_replaces_the_old_one_whole() -> None:
    h = CustomerHistory(day(0)).profiled(
        day(2), tier="SMB", industry=None, employees=None, classified_by="manual"
    )
    rows = Rows()

    rows.apply(envelopes(h))

    found = rows.customer(h)
    assert (found.tier, found.industry, found.employees, found.classified_by) == (
        "SMB",
        None,
        None,
        "manual",
    )
    assert (found.recorded_at, found.updated_at, found.version) == (day(0), day(2), 2)


def test_key_persons_are_added_changed_and_removed_and_the_customer_counts_the_current_ones() -> (
    None
):
    h = (
        CustomerHistory(day(0))
        .add("p-1", day(1), opportunity_id="opp-9", phone="13800000000")
        .add("p-2", day(2), name="李娜", role="influencer", reports_to="p-1")
        .change("p-1", day(3), title=None, stance="supporter", note="golf on Fridays")
        .remove("p-2", day(4))
    )
    rows = Rows()

    rows.apply(envelopes(h, 1, 2, 3))
    assert rows.customer(h).key_persons == 2
    rows.apply(envelopes(h, 4, 5))

    first, second = rows.person(h, "p-1"), rows.person(h, "p-2")
    assert first == KeyPersonRow(
        uscc=h.uscc,
        person_id="p-1",
        name="王建国",
        title=None,
        role="decision_maker",
        stance="supporter",
        reports_to=None,
        phone="13800000000",
        email=None,
        note="golf on Fridays",
        added_through="opp-9",
        added_at=day(1),
        changed_at=day(3),
        removed_at=None,
    )
    assert (second.role, second.reports_to, second.added_through) == ("influencer", "p-1", None)
    assert (second.removed_at, second.changed_at) == (day(4), None)
    customer = rows.customer(h)
    assert (customer.key_persons, customer.updated_at, customer.version) == (1, day(4), 5)


def test_a_cleared_stance_is_unknown_again() -> None:
    h = (
        CustomerHistory(day(0))
        .add("p-1", day(1), stance="opponent")
        .change("p-1", day(2), stance=None)
    )
    rows = Rows()

    rows.apply(envelopes(h))

    assert rows.person(h, "p-1").stance == "unknown"


def test_the_same_events_again_are_duplicates_and_change_nothing() -> None:
    h = CustomerHistory(day(0)).add("p-1", day(1)).remove("p-1", day(2))
    rows = Rows()
    rows.apply(envelopes(h))
    before = (dict(rows.customers), {u: dict(p) for u, p in rows.persons.items()})

    again = rows.apply(envelopes(h) + envelopes(h, 2))

    assert counts(again) == {"duplicates": 4}
    assert (again.customers, again.persons, again.events) == ({}, {}, [])
    assert (rows.customers, rows.persons) == before


def test_a_version_ahead_waits_for_the_missing_one_then_all_apply_in_order() -> None:
    h = CustomerHistory(day(0)).add("p-1", day(1)).change("p-1", day(2), name="王建军")
    rows = Rows()

    gap = rows.apply(envelopes(h, 1, 3))

    assert counts(gap) == {"applied": 1, "held": 1, "gaps": 1}
    assert rows.customer(h).version == 1
    assert [e.version for e in gap.holds] == [3]

    filled = rows.apply(envelopes(h, 2))

    assert counts(filled) == {"applied": 2, "released": 1}
    assert rows.person(h, "p-1").name == "王建军"
    assert rows.customer(h).version == 3
    assert rows.held == {h.id: {}}


def test_events_before_the_recording_wait_for_it() -> None:
    h = CustomerHistory(day(0)).add("p-1", day(1))
    rows = Rows()

    waiting = rows.apply(envelopes(h, 2))
    recorded = rows.apply(envelopes(h, 1))

    assert counts(waiting) == {"held": 1, "gaps": 1}
    assert waiting.customers == {}
    assert counts(recorded) == {"applied": 2, "released": 1}
    assert rows.customer(h).key_persons == 1


def test_a_refused_payload_is_poison_and_only_moves_the_version_on() -> None:
    h = (
        CustomerHistory(day(0))
        .emit(
            "CustomerKeyPersonAdded",
            day(1),
            {"person_id": "p-1", "person": {"name": "x", "role": "boss"}},
            checked=False,
        )
        .add("p-2", day(2))
        .change("p-2", day(3), name=None)
    )
    rows = Rows()

    changes = rows.apply(envelopes(h))

    assert counts(changes) == {"applied": 2, "poison": 2}
    assert [why for _, why in changes.refused] == [
        "CustomerKeyPersonAdded v2: refused: person.role: Input should be 'decision_maker', "
        "'economic_buyer', 'influencer', 'user', 'gatekeeper', 'champion' or 'other'",
        "CustomerKeyPersonChanged v4: refused: changes.name: Input should be a valid string",
    ]
    assert [(e.version, projected) for e, projected in changes.events] == [
        (1, True),
        (2, False),
        (3, True),
        (4, False),
    ]
    customer = rows.customer(h)
    assert (customer.version, customer.key_persons, customer.updated_at) == (4, 1, day(2))
    assert rows.person(h, "p-2").name == "王建国"
    assert "p-1" not in rows.persons[h.uscc]


def test_a_refused_recording_starts_nothing_and_the_record_waits() -> None:
    h = CustomerHistory(day(0), tier="VIP", checked=False).add("p-1", day(1))
    rows = Rows()

    changes = rows.apply(envelopes(h))

    assert counts(changes) == {"poison": 1, "held": 1, "gaps": 1}
    assert changes.customers == {}
    assert [e.version for e in changes.holds] == [2]


def test_an_unknown_customer_event_type_and_an_unknown_key_person_change_nothing() -> None:
    h = (
        CustomerHistory(day(0))
        .emit("CustomerMergedInto", day(1), {"into": "another"})
        .change("p-404", day(2), name="nobody")
        .remove("p-404", day(3))
    )
    rows = Rows()

    changes = rows.apply(envelopes(h))

    assert counts(changes) == {"applied": 4, "not_projected": 3}
    customer = rows.customer(h)
    assert (customer.version, customer.updated_at, customer.key_persons) == (4, day(0), 0)
    assert rows.persons == {}


def test_a_uscc_the_check_refuses_today_is_still_taken_as_recorded() -> None:
    valid = new_uscc()
    wrong = valid[:-1] + ("0" if valid[-1] != "0" else "1")
    h = CustomerHistory(day(0), uscc=wrong, checked=False)
    rows = Rows()

    rows.apply(envelopes(h))

    assert rows.customer(h).uscc == wrong


def test_customer_events_are_told_from_opportunity_events_by_their_type() -> None:
    assert is_customer_event("CustomerKeyPersonAdded")
    assert is_customer_event("CustomerSomethingLater")
    assert not is_customer_event("KeyPersonAdded")
    assert not is_customer_event("OpportunityCreated")
