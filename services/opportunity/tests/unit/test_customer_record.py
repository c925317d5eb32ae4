"""The customer record (SPEC §8.1): its key persons — numbered for good, reporting to current
ones of the same customer without cycles, reports moved up when their manager is removed —
and its profile, merged from what each opportunity gives."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.application import project_aggregate

from opportunity.domain.customer_record import CustomerRecord
from opportunity.domain.errors import InvalidValue, KeyPersonNotFound

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
USCC = "91350100M000100Y43"
PROFILE = {
    "uscc": USCC,
    "name": "Acme",
    "tier": "KA",
    "ownership": "SOE",
    "industry": "manufacturing",
    "region": None,
}


def person(name: str, reports_to: str | None = None, **fields: Any) -> dict[str, Any]:
    defaults = {"name": name, "role": "influencer", "stance": "unknown", "reports_to": reports_to}
    return defaults | fields


def new_record() -> CustomerRecord:
    return CustomerRecord(uscc=USCC, customer=PROFILE, at=T0, actor="rep-1")


def chain() -> CustomerRecord:
    """CEO (1) ← CIO (2) ← IT manager (3)."""
    record = new_record()
    record.add_key_person(person("CEO", role="decision_maker"), T0, "rep-1")
    record.add_key_person(person("CIO", "1"), T0, "rep-1")
    record.add_key_person(person("IT manager", "2"), T0, "rep-1")
    return record


def reports(record: CustomerRecord) -> dict[str, str | None]:
    return {p["id"]: p["reports_to"] for p in record.shown_key_persons()}


def event_names(record: CustomerRecord) -> list[str]:
    return [type(e).__name__ for e in record.collect_events()]


def test_the_record_id_is_derived_from_the_uscc() -> None:
    assert new_record().id == CustomerRecord.create_id(USCC)
    assert CustomerRecord.create_id(USCC) != CustomerRecord.create_id("91110108MA0000001D")


def test_key_persons_are_numbered_and_shown_with_every_field() -> None:
    record = chain()

    shown = record.shown_key_persons()

    assert [p["id"] for p in shown] == ["1", "2", "3"]
    assert shown[1] == {
        "id": "2",
        "name": "CIO",
        "title": None,
        "role": "influencer",
        "stance": "unknown",
        "reports_to": "1",
        "phone": None,
        "email": None,
        "note": None,
    }
    assert event_names(record) == ["CustomerRecorded"] + ["CustomerKeyPersonAdded"] * 3


def test_an_id_is_never_given_again_after_a_removal() -> None:
    record = chain()
    record.remove_key_person("3", T0, "rep-1")

    added = record.add_key_person(person("New IT manager", "2"), T0, "rep-1")

    assert added == "4"
    assert [p["id"] for p in record.shown_key_persons()] == ["1", "2", "4"]


def test_the_opportunity_a_person_came_through_is_recorded() -> None:
    record = new_record()
    record.collect_events()

    record.add_key_person(person("CEO"), T0, "rep-1", opportunity_id="opp-7")

    (added,) = record.collect_events()
    assert vars(added)["opportunity_id"] == "opp-7"
    assert vars(added)["uscc"] == USCC


@pytest.mark.parametrize("reports_to", ["9", "", "CEO"])
def test_reporting_to_an_unknown_person_is_refused_naming_reports_to(reports_to: str) -> None:
    record = chain()

    with pytest.raises(InvalidValue) as refused:
        record.add_key_person(person("Buyer", reports_to), T0, "rep-1")

    assert refused.value.field == "reports_to"
    assert len(record.shown_key_persons()) == 3


def test_reporting_to_a_removed_person_is_refused() -> None:
    record = chain()
    record.remove_key_person("2", T0, "rep-1")

    with pytest.raises(InvalidValue) as on_add:
        record.add_key_person(person("Buyer", "2"), T0, "rep-1")
    with pytest.raises(InvalidValue) as on_change:
        record.change_key_person("3", {"reports_to": "2"}, T0, "rep-1")

    assert on_add.value.field == on_change.value.field == "reports_to"


@pytest.mark.parametrize(("person_id", "reports_to"), [("1", "3"), ("1", "2"), ("2", "2")])
def test_a_change_that_would_make_a_cycle_is_refused(person_id: str, reports_to: str) -> None:
    record = chain()
    record.collect_events()

    with pytest.raises(InvalidValue) as refused:
        record.change_key_person(person_id, {"reports_to": reports_to}, T0, "rep-1")

    assert refused.value.field == "reports_to"
    assert "cycle" in refused.value.message
    assert record.collect_events() == []


def test_a_change_records_only_the_fields_that_differ() -> None:
    record = chain()
    record.collect_events()

    record.change_key_person(
        "3", {"name": "IT manager", "stance": "supporter", "reports_to": "1"}, T0, "rep-1"
    )

    (changed,) = record.collect_events()
    assert type(changed).__name__ == "CustomerKeyPersonChanged"
    assert vars(changed)["changes"] == {"stance": "supporter", "reports_to": "1"}
    assert reports(record) == {"1": None, "2": "1", "3": "1"}


def test_a_change_to_the_same_values_records_nothing() -> None:
    record = chain()
    record.collect_events()

    record.change_key_person("2", {"name": "CIO", "reports_to": "1"}, T0, "rep-1")

    assert record.collect_events() == []


def test_a_change_may_clear_an_optional_field_but_not_a_required_one() -> None:
    record = new_record()
    record.add_key_person(person("CEO", phone="123"), T0, "rep-1")

    record.change_key_person("1", {"phone": None}, T0, "rep-1")
    assert record.shown_key_persons()[0]["phone"] is None

    for field in ("name", "role", "stance"):
        with pytest.raises(InvalidValue) as refused:
            record.change_key_person("1", {field: None}, T0, "rep-1")
        assert refused.value.field == field


@pytest.mark.parametrize(("field", "value"), [("role", "boss"), ("stance", "hostile")])
def test_a_role_or_stance_outside_the_lists_is_refused(field: str, value: str) -> None:
    record = chain()

    with pytest.raises(InvalidValue) as refused:
        record.change_key_person("1", {field: value}, T0, "rep-1")

    assert refused.value.field == field


@pytest.mark.parametrize("person_id", ["4", "0", "x"])
def test_changing_or_removing_an_unknown_person_is_not_found(person_id: str) -> None:
    record = chain()

    with pytest.raises(KeyPersonNotFound):
        record.change_key_person(person_id, {"name": "X"}, T0, "rep-1")
    with pytest.raises(KeyPersonNotFound):
        record.remove_key_person(person_id, T0, "rep-1")


def test_a_removed_person_cannot_be_changed_or_removed_again() -> None:
    record = chain()
    record.remove_key_person("3", T0, "rep-1")

    with pytest.raises(KeyPersonNotFound):
        record.change_key_person("3", {"name": "X"}, T0, "rep-1")
    with pytest.raises(KeyPersonNotFound):
        record.remove_key_person("3", T0, "rep-1")


def test_removing_a_manager_moves_their_reports_up_to_their_own_manager() -> None:
    record = chain()
    record.add_key_person(person("Architect", "2"), T0, "rep-1")
    record.collect_events()

    record.remove_key_person("2", T0, "rep-1")

    assert reports(record) == {"1": None, "3": "1", "4": "1"}
    recorded = record.collect_events()
    assert [type(e).__name__ for e in recorded] == [
        "CustomerKeyPersonChanged",
        "CustomerKeyPersonChanged",
        "CustomerKeyPersonRemoved",
    ]
    assert [vars(e)["person_id"] for e in recorded] == ["3", "4", "2"]
    assert all(vars(e)["changes"] == {"reports_to": "1"} for e in recorded[:2])


def test_removing_the_top_of_the_chain_leaves_its_reports_reporting_to_no_one() -> None:
    record = chain()

    record.remove_key_person("1", T0, "rep-1")

    assert reports(record) == {"2": None, "3": "2"}


def test_a_profile_merges_given_fields_and_keeps_the_known_ones() -> None:
    record = new_record()
    record.collect_events()

    record.reprofile(
        {**PROFILE, "name": "Acme Group", "industry": None, "region": "east"},
        T0 + timedelta(days=1),
        "intake",
    )

    (profiled,) = record.collect_events()
    assert type(profiled).__name__ == "CustomerProfiled"
    assert record.profile == {**PROFILE, "name": "Acme Group", "region": "east"}
    assert vars(profiled)["customer"] == record.profile


def test_a_profile_that_changes_nothing_records_nothing() -> None:
    record = new_record()
    record.collect_events()

    record.reprofile({**PROFILE, "industry": None, "region": None}, T0, "rep-1")

    assert record.collect_events() == []


def test_the_record_replays_from_its_events_to_the_same_state() -> None:
    record = chain()
    record.change_key_person("3", {"stance": "opponent"}, T0, "rep-1")
    record.remove_key_person("2", T0, "rep-1")
    record.reprofile({**PROFILE, "name": "Acme Group"}, T0, "rep-1")

    replayed = project_aggregate(None, record.collect_events())

    assert isinstance(replayed, CustomerRecord)
    assert replayed.shown_key_persons() == record.shown_key_persons()
    assert (replayed.profile, replayed.persons_added) == (record.profile, 3)
