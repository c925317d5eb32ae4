"""The customer records' tables (SPEC §8.1) from the events topic, on SQLite and PostgreSQL:
written in one transaction with the partitions' positions, exactly once, in version order per
record, apart from the opportunities' held events; poison kept aside; joined to the
opportunities by USCC."""

from decimal import Decimal
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from projections.adapters import store as store_module
from projections.adapters.customers import apply_customer_events
from services.projections.tests.conftest import Service, snapshot
from services.projections.tests.customers import CustomerHistory
from services.projections.tests.history import History, day, envelopes_of
from services.projections.tests.integration.test_store import TOPIC, records


def uscc_of(h: History) -> str:
    return str(h.envelopes[0]["payload"]["customer"]["uscc"])


def rows(service: Service, sql: str, **params: Any) -> list[dict[str, Any]]:
    with service.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def customers(service: Service) -> list[dict[str, Any]]:
    """`bi_customer`'s rows with their values typed (amounts as Decimals, instants aware)."""
    with service.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(service.store.tables.customer)).mappings()]


def count(service: Service, table: str) -> int:
    return int(rows(service, f"SELECT count(*) AS n FROM {table}")[0]["n"])  # noqa: S608 - ours


def a_customer_and_its_opportunity() -> tuple[History, CustomerHistory]:
    opportunity = History(day(0)).advance("requirements", day(2))
    customer = (
        CustomerHistory(day(0), uscc=uscc_of(opportunity))
        .add("p-1", day(1), opportunity_id=opportunity.id)
        .add("p-2", day(3), name="李娜", role="champion")
        .change("p-1", day(4), stance="supporter")
        .remove("p-2", day(5))
    )
    return opportunity, customer


def test_customer_events_fill_their_tables_beside_the_opportunities_with_the_positions(
    service: Service,
) -> None:
    opportunity, customer = a_customer_and_its_opportunity()
    envelopes = envelopes_of(opportunity, customer)

    outcome = service.store.apply_records(records(envelopes))

    assert (outcome.applied, outcome.held, outcome.gaps, outcome.poison) == (7, 0, 0, 0)
    assert service.store.positions(TOPIC) == {0: 7}
    [found] = customers(service)
    assert (found["uscc"], found["record_id"], found["name"], found["tier"]) == (
        customer.uscc,
        customer.id,
        "华东机械有限公司",
        "KA",
    )
    assert (found["key_persons"], found["version"], found["employees"]) == (1, 5, 1200)
    assert (found["registered_capital"], found["annual_revenue"]) == (
        Decimal("50000000.00"),
        Decimal("880000000.00"),
    )
    assert (found["recorded_at"], found["updated_at"]) == (day(0), day(5))
    persons = rows(
        service,
        "SELECT person_id, stance, added_through, removed_at FROM bi_key_person ORDER BY person_id",
    )
    assert [(p["person_id"], p["stance"], p["added_through"]) for p in persons] == [
        ("p-1", "supporter", opportunity.id),
        ("p-2", "unknown", None),
    ]
    assert persons[0]["removed_at"] is None
    assert persons[1]["removed_at"] is not None
    kinds = rows(
        service,
        "SELECT event_type, projected FROM bi_event WHERE opportunity_id = :id ORDER BY version",
        id=customer.id,
    )
    assert [(k["event_type"], bool(k["projected"])) for k in kinds] == [
        ("CustomerRecorded", True),
        ("CustomerKeyPersonAdded", True),
        ("CustomerKeyPersonAdded", True),
        ("CustomerKeyPersonChanged", True),
        ("CustomerKeyPersonRemoved", True),
    ]
    assert count(service, "projection_held_event") == 0
    assert count(service, "projection_held_customer_event") == 0


def test_bi_joins_opportunities_to_their_customer_by_uscc(service: Service) -> None:
    opportunity, customer = a_customer_and_its_opportunity()
    service.feed_envelopes(envelopes_of(opportunity, customer))  # type: ignore[arg-type]

    joined = rows(
        service,
        "SELECT o.id, o.stage, c.name, c.key_persons, c.classified_by FROM bi_opportunity o "
        "JOIN bi_customer c ON c.uscc = o.uscc",
    )

    assert joined == [
        {
            "id": opportunity.id,
            "stage": "requirements",
            "name": "华东机械有限公司",
            "key_persons": 1,
            "classified_by": "ka-by-revenue",
        }
    ]


def test_redelivered_customer_events_change_nothing(service: Service) -> None:
    opportunity, customer = a_customer_and_its_opportunity()
    envelopes = envelopes_of(opportunity, customer)
    service.store.apply_records(records(envelopes))
    once = snapshot(service.store.engine)

    # The relay published them again after the stored position; then the consumer read the
    # partition again from an older offset.
    again = service.store.apply_records(records(envelopes, start=len(envelopes)))
    before = service.store.apply_records(records(envelopes), {(TOPIC, 0): 2 * len(envelopes)})

    assert (again.applied, again.duplicates) == (0, len(envelopes))
    assert (before.applied, before.already_applied) == (0, len(envelopes))
    assert snapshot(service.store.engine) == once
    assert service.store.positions(TOPIC) == {0: 2 * len(envelopes)}


def test_the_customer_rows_and_the_position_are_stored_together_or_not_at_all(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    opportunity, customer = a_customer_and_its_opportunity()
    envelopes = envelopes_of(opportunity, customer)

    def written_then_failed(*args: Any) -> Any:
        apply_customer_events(*args)
        raise ConnectionError("the database went away after writing the customer rows")

    monkeypatch.setattr(store_module, "apply_customer_events", written_then_failed)
    with pytest.raises(ConnectionError):
        service.store.apply_records(records(envelopes))
    monkeypatch.undo()

    assert service.store.positions(TOPIC) == {}
    assert count(service, "bi_customer") == count(service, "bi_event") == 0

    service.store.apply_records(records(envelopes))

    assert service.store.positions(TOPIC) == {0: 7}
    assert count(service, "bi_customer") == 1


def test_a_version_ahead_waits_apart_from_the_opportunities_until_the_missing_one(
    service: Service,
) -> None:
    _, customer = a_customer_and_its_opportunity()
    first, second, third, *_ = customer.envelopes

    gap = service.store.apply_records(records([first, third]))

    assert (gap.applied, gap.held, gap.gaps) == (1, 1, 1)
    assert count(service, "projection_held_customer_event") == 1
    assert count(service, "projection_held_event") == 0
    assert service.store.held_count() == 1
    assert rows(service, "SELECT key_persons, version FROM bi_customer") == [
        {"key_persons": 0, "version": 1}
    ]

    filled = service.store.apply_records(records([second], start=2))

    assert (filled.applied, filled.released) == (2, 1)
    assert service.store.held_count() == 0
    assert rows(service, "SELECT key_persons, version FROM bi_customer") == [
        {"key_persons": 2, "version": 3}
    ]


def test_a_customer_event_the_contract_refuses_is_kept_as_poison_and_the_record_goes_on(
    service: Service,
) -> None:
    customer = (
        CustomerHistory(day(0))
        .emit(
            "CustomerKeyPersonAdded",
            day(1),
            {"person_id": "p-1", "person": {"name": "王总", "role": "boss"}},
            checked=False,
        )
        .add("p-2", day(2))
    )

    outcome = service.store.apply_records(records(customer.envelopes))

    assert (outcome.applied, outcome.poison) == (2, 1)
    [poison] = rows(service, "SELECT * FROM projection_poison")
    assert (poison["topic"], poison["partition"], poison["offset"]) == (TOPIC, 0, 1)
    assert "CustomerKeyPersonAdded v2: refused: person.role" in poison["error"]
    assert orjson.loads(poison["value"]) == customer.envelopes[1]
    assert rows(service, "SELECT key_persons, version FROM bi_customer") == [
        {"key_persons": 1, "version": 3}
    ]
    assert service.store.positions(TOPIC) == {0: 3}


def test_a_customer_event_too_long_for_the_tables_is_set_aside_alone(service: Service) -> None:
    if service.store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite keeps text of any length")
    opportunity = History(day(0))
    customer = CustomerHistory(day(0)).add("p" * 300, day(1))
    batch = records([*opportunity.envelopes, *customer.envelopes])

    outcome = service.store.apply_records(batch)

    assert (outcome.applied, outcome.poison) == (2, 1)
    assert [r["offset"] for r in rows(service, "SELECT * FROM projection_poison")] == [2]
    assert service.store.positions(TOPIC) == {0: 3}
