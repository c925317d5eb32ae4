"""Events held for a missing version of their aggregate, in a held-events table (the
opportunities' `projection_held_event` or the customer records' `projection_held_customer_event`,
both `event_id, opportunity_id, version, envelope`): read, held, let go, inside the store's
transaction."""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa

from contracts.envelope import Envelope, NotAnEnvelope, read_envelope
from projections.adapters.bulk import insert_new
from projections.adapters.rows import HELD_COLUMNS

# Ids per SELECT … IN (…): far below SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


def held_events(
    conn: sa.Connection, table: sa.Table, ids: list[str]
) -> dict[str, dict[int, Envelope]]:
    """The events of these aggregates waiting in `table`, by aggregate id and version (usually
    none)."""
    if conn.execute(sa.select(table.c.event_id).limit(1)).first() is None:
        return {}
    found: dict[str, dict[int, Envelope]] = defaultdict(dict)
    for start in range(0, len(ids), CHUNK):
        rows = conn.execute(
            sa.select(table.c.envelope).where(
                table.c.opportunity_id.in_(ids[start : start + CHUNK])
            )
        )
        for (text,) in rows:
            try:
                held = read_envelope(text)
            except NotAnEnvelope:  # what an older version held and this one refuses
                continue
            found[held.opportunity_id][held.version] = held
    return found


def hold(conn: sa.Connection, table: sa.Table, events: Sequence[Envelope]) -> None:
    rows = [(e.event_id, e.opportunity_id, e.version, e.model_dump_json()) for e in events]
    insert_new(conn, table, HELD_COLUMNS, rows)


def let_go(conn: sa.Connection, table: sa.Table, event_ids: list[str]) -> None:
    """Delete the held events applied or passed over since."""
    for start in range(0, len(event_ids), CHUNK):
        conn.execute(sa.delete(table).where(table.c.event_id.in_(event_ids[start : start + CHUNK])))


def held_count(conn: sa.Connection, table: sa.Table) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
