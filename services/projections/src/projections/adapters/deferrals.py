"""A batch's deferral episodes into `bi_deferral`, inside the store's transaction: the episodes
started, then the ends in the order applied.

An end closes the opportunity's episode still open before it: the one with no end and an earlier
version (events are applied in version order, so there is exactly one; an episode started and
ended in the same batch is written first, then ended).
"""

from collections.abc import Sequence
from dataclasses import astuple, fields

import sqlalchemy as sa

from projections.adapters.bulk import insert_new
from projections.domain.deferrals import Ended, Started

STARTED_COLUMNS = tuple(f.name for f in fields(Started))


def write_deferrals(
    conn: sa.Connection, table: sa.Table, started: Sequence[Started], ended: Sequence[Ended]
) -> None:
    insert_new(conn, table, STARTED_COLUMNS, [astuple(s) for s in started], unique=True)
    if not ended:
        return
    conn.execute(
        sa.update(table)
        .where(
            table.c.opportunity_id == sa.bindparam("key"),
            table.c.ended_version.is_(None),
            table.c.deferred_version < sa.bindparam("version"),
        )
        .values(
            ended_at=sa.bindparam("at"),
            ended_version=sa.bindparam("version"),
            end_kind=sa.bindparam("kind"),
        ),
        [
            {
                "key": e.opportunity_id,
                "at": e.ended_at,
                "version": e.ended_version,
                "kind": e.end_kind,
            }
            for e in ended
        ],
    )
