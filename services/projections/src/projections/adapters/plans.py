"""A batch's target and competition events (SPEC §9) into `bi_target_change`, `bi_competition`
and `bi_event`, inside the store's transaction (adapters/store.py).

Idempotent by (aggregate id, version): a version already in `bi_event` is a duplicate and
changes nothing. A competition's row keeps its latest definition (by version), whatever order
the definitions arrive in.
"""

from collections.abc import Sequence
from dataclasses import astuple, fields

import sqlalchemy as sa

from contracts.envelope import Envelope, RecordKind, kind_of
from projections.adapters.bulk import insert_new, upsert
from projections.adapters.held import CHUNK
from projections.adapters.rows import EVENT_COLUMNS, event_row
from projections.adapters.schema import Tables
from projections.domain.ordering import Counts
from projections.domain.plans import CompetitionRow, TargetChange, competition_row, target_change

TARGET_CHANGE_COLUMNS = tuple(f.name for f in fields(TargetChange))
COMPETITION_COLUMNS = tuple(f.name for f in fields(CompetitionRow))


def apply_plan_events(conn: sa.Connection, tables: Tables, events: Sequence[Envelope]) -> Counts:
    counts = Counts()
    applied = _known(conn, tables.event, events)
    changes: list[TargetChange] = []
    definitions: dict[str, CompetitionRow] = {}
    rows = []
    for event in events:
        key = (event.opportunity_id, event.version)
        if key in applied:
            counts.duplicates += 1
            continue
        applied.add(key)
        projected = False
        if kind_of(event.event_type) is RecordKind.TARGET:
            change = target_change(event)
            if change is not None:
                changes.append(change)
                projected = True
        else:
            definition = competition_row(event)
            if definition is not None:
                known = definitions.get(definition.competition_id)
                if known is None or known.version < definition.version:
                    definitions[definition.competition_id] = definition
                projected = True
        counts.applied += 1
        counts.not_projected += not projected
        rows.append(event_row(event, projected))
    insert_new(conn, tables.event, EVENT_COLUMNS, rows, unique=True)
    insert_new(
        conn,
        tables.target_change,
        TARGET_CHANGE_COLUMNS,
        [astuple(c) for c in changes],
        unique=True,
    )
    upsert(
        conn,
        tables.competition,
        COMPETITION_COLUMNS,
        [astuple(d) for d in definitions.values()],
        "version",
    )
    return counts


def _known(
    conn: sa.Connection, table: sa.Table, events: Sequence[Envelope]
) -> set[tuple[str, int]]:
    """The (aggregate id, version) of these events already in `bi_event`."""
    ids = sorted({event.opportunity_id for event in events})
    found: set[tuple[str, int]] = set()
    for start in range(0, len(ids), CHUNK):
        query = sa.select(table.c.opportunity_id, table.c.version).where(
            table.c.opportunity_id.in_(ids[start : start + CHUNK])
        )
        found.update((row[0], int(row[1])) for row in conn.execute(query))
    return found
