"""A batch's customer record events into `bi_customer`, `bi_key_person` and `bi_event`,
inside the store's transaction (adapters/store.py): the rows they need read, the pure step
(domain/customers.py) run, what it changed written. The poison it finds is the store's to keep
(only the store knows the records)."""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa

from contracts.envelope import Envelope
from projections.adapters.bulk import insert_new, upsert
from projections.adapters.held import CHUNK, held_events, hold, let_go
from projections.adapters.rows import EVENT_COLUMNS, event_row
from projections.adapters.schema import Tables
from projections.domain.customers import (
    CUSTOMER_FIELDS,
    KEY_PERSON_FIELDS,
    CustomerChanges,
    CustomerRow,
    KeyPersonRow,
    customer_values,
    customers_in_order,
    key_person_values,
)


def apply_customer_events(
    conn: sa.Connection, tables: Tables, events: Sequence[Envelope]
) -> CustomerChanges:
    """Apply customer record events (and those of their records held before) in version
    order per record, and write what changed."""
    ids = list(dict.fromkeys(event.opportunity_id for event in events))
    customers = _customers(conn, tables.customer, ids)
    persons = _key_persons(conn, tables.key_person, [c.uscc for c in customers.values()])
    changes = customers_in_order(
        customers, persons, held_events(conn, tables.held_customer, ids), events
    )
    rows = [event_row(event, projected) for event, projected in changes.events]
    # Only versions above the stored row get here (see the store's opportunity events).
    insert_new(conn, tables.event, EVENT_COLUMNS, rows, unique=True)
    upsert(
        conn,
        tables.customer,
        CUSTOMER_FIELDS,
        [customer_values(c) for c in changes.customers.values()],
        "version",
    )
    upsert(
        conn,
        tables.key_person,
        KEY_PERSON_FIELDS,
        [key_person_values(p) for p in changes.persons.values()],
    )
    hold(conn, tables.held_customer, changes.holds)
    let_go(conn, tables.held_customer, changes.released_ids)
    return changes


def _customers(conn: sa.Connection, table: sa.Table, ids: list[str]) -> dict[str, CustomerRow]:
    found: dict[str, CustomerRow] = {}
    for start in range(0, len(ids), CHUNK):
        query = sa.select(table).where(table.c.record_id.in_(ids[start : start + CHUNK]))
        for row in conn.execute(query).mappings():
            found[row["record_id"]] = CustomerRow(**{name: row[name] for name in CUSTOMER_FIELDS})
    return found


def _key_persons(
    conn: sa.Connection, table: sa.Table, usccs: list[str]
) -> dict[str, dict[str, KeyPersonRow]]:
    """Every key person ever added to these customers, by USCC and person id."""
    found: dict[str, dict[str, KeyPersonRow]] = defaultdict(dict)
    for start in range(0, len(usccs), CHUNK):
        query = sa.select(table).where(table.c.uscc.in_(usccs[start : start + CHUNK]))
        for row in conn.execute(query).mappings():
            person = KeyPersonRow(**{name: row[name] for name in KEY_PERSON_FIELDS})
            found[person.uscc][person.person_id] = person
    return found
