"""The customer record (SPEC §8.1): one per USCC, the profile its opportunities gave it, and the
key persons of its decision chain (决策链).

Public methods validate, then call a private event method; event bodies only assign, because
they re-run on every replay. Time and actor are passed in, never read here.
"""

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from contracts.customer_record import KeyPersonRole, Stance
from opportunity.domain.errors import InvalidValue, KeyPersonNotFound
from opportunity.domain.ids import ID_NAMESPACE

# A key person's fields, in the order the API shows them after the id.
KEY_PERSON_FIELDS = ("name", "title", "role", "stance", "reports_to", "phone", "email", "note")
# The fields a change may not clear, with the values each may take (None: any text).
_REQUIRED: dict[str, frozenset[str] | None] = {
    "name": None,
    "role": frozenset(role.value for role in KeyPersonRole),
    "stance": frozenset(stance.value for stance in Stance),
}


class CustomerRecord(Aggregate):
    """One customer, whatever its opportunities: its latest profile and its key persons."""

    @staticmethod
    def create_id(uscc: str) -> UUID:
        return uuid5(ID_NAMESPACE, f"customer-record/{uscc}")

    @event("CustomerRecorded")
    def __init__(self, uscc: str, customer: dict[str, Any], at: datetime, actor: str) -> None:
        self.uscc = uscc
        self.profile = dict(customer)
        # Current key persons by id; a removed one is gone from here, never from the history.
        self.key_persons: dict[str, dict[str, Any]] = {}
        # Every key person ever added: the next one is numbered after them (ids never reused).
        self.persons_added = 0

    def reprofile(self, customer: dict[str, Any], at: datetime, actor: str) -> None:
        """Merge a profile an opportunity gave: a field given replaces the known one, a field
        left out (None) keeps it. Recorded only when something changed."""
        merged = {**self.profile, **{k: v for k, v in customer.items() if v is not None}}
        if merged != self.profile:
            self._profiled(uscc=self.uscc, customer=merged, at=at, actor=actor)

    def add_key_person(
        self, person: dict[str, Any], at: datetime, actor: str, opportunity_id: str | None = None
    ) -> str:
        """Add a key person (the opportunity it was added through, if any); the new id."""
        self._check_fields(person, complete=True)
        self._check_reports_to(None, person.get("reports_to"))
        person_id = str(self.persons_added + 1)
        self._key_person_added(
            uscc=self.uscc,
            person_id=person_id,
            person={name: person.get(name) for name in KEY_PERSON_FIELDS},
            opportunity_id=opportunity_id,
            at=at,
            actor=actor,
        )
        return person_id

    def change_key_person(
        self, person_id: str, changes: dict[str, str | None], at: datetime, actor: str
    ) -> None:
        """Change the fields named (None clears an optional one); recorded only when a value
        differs."""
        person = self._person(person_id)
        self._check_fields(changes, complete=False)
        if "reports_to" in changes:
            self._check_reports_to(person_id, changes["reports_to"])
        changed = {name: value for name, value in changes.items() if person.get(name) != value}
        if changed:
            self._key_person_changed(
                uscc=self.uscc, person_id=person_id, changes=changed, at=at, actor=actor
            )

    def remove_key_person(self, person_id: str, at: datetime, actor: str) -> None:
        """Remove a key person; whoever reported to them now reports to their own manager."""
        manager = self._person(person_id).get("reports_to")
        reporting = [pid for pid, p in self.key_persons.items() if p.get("reports_to") == person_id]
        for pid in reporting:
            self._key_person_changed(
                uscc=self.uscc, person_id=pid, changes={"reports_to": manager}, at=at, actor=actor
            )
        self._key_person_removed(uscc=self.uscc, person_id=person_id, at=at, actor=actor)

    def shown_key_persons(self) -> list[dict[str, Any]]:
        """The current key persons as the API shows them, in the order they were added."""
        return [
            {"id": pid, **{name: person.get(name) for name in KEY_PERSON_FIELDS}}
            for pid, person in sorted(self.key_persons.items(), key=lambda item: int(item[0]))
        ]

    def _person(self, person_id: str) -> dict[str, Any]:
        found = self.key_persons.get(person_id)
        if found is None:
            raise KeyPersonNotFound(self.uscc, person_id)
        return found

    @staticmethod
    def _check_fields(values: dict[str, Any], complete: bool) -> None:
        """Known fields only; the required ones (all of them when `complete`) with a value
        they may take."""
        unknown = sorted(set(values) - set(KEY_PERSON_FIELDS))
        if unknown:
            raise InvalidValue(
                unknown[0], f"not a field of a key person; its fields are {list(KEY_PERSON_FIELDS)}"
            )
        for name, allowed in _REQUIRED.items():
            if name not in values and not complete:
                continue
            value = values.get(name)
            if value is None:
                raise InvalidValue(name, f"a key person's {name} is required")
            if allowed is not None and value not in allowed:
                raise InvalidValue(name, f"the {name} is not one of {sorted(allowed)}")

    def _check_reports_to(self, person_id: str | None, reports_to: str | None) -> None:
        """`reports_to` names a current key person of this customer, and no one reports to
        `person_id` through them (no cycle)."""
        if reports_to is None:
            return
        if reports_to not in self.key_persons:
            raise InvalidValue("reports_to", f"customer {self.uscc} has no key person of that id")
        if reports_to == person_id:
            raise InvalidValue("reports_to", "a key person cannot report to themselves (a cycle)")
        manager: str | None = reports_to
        while manager is not None:
            if manager == person_id:
                raise InvalidValue(
                    "reports_to",
                    f"key person {person_id} cannot report to {reports_to}, who reports to "
                    f"{person_id} already (a cycle)",
                )
            manager = self.key_persons[manager].get("reports_to")

    @event("CustomerProfiled")
    def _profiled(self, uscc: str, customer: dict[str, Any], at: datetime, actor: str) -> None:
        self.profile = dict(customer)

    @event("CustomerKeyPersonAdded")
    def _key_person_added(  # noqa: PLR0913 - what the event records
        self,
        uscc: str,
        person_id: str,
        person: dict[str, Any],
        opportunity_id: str | None,
        at: datetime,
        actor: str,
    ) -> None:
        self.key_persons = {**self.key_persons, person_id: dict(person)}
        self.persons_added += 1

    @event("CustomerKeyPersonChanged")
    def _key_person_changed(
        self, uscc: str, person_id: str, changes: dict[str, str | None], at: datetime, actor: str
    ) -> None:
        person = {**self.key_persons[person_id], **changes}
        self.key_persons = {**self.key_persons, person_id: person}

    @event("CustomerKeyPersonRemoved")
    def _key_person_removed(self, uscc: str, person_id: str, at: datetime, actor: str) -> None:
        self.key_persons = {k: v for k, v in self.key_persons.items() if k != person_id}
