"""Tables of ours in the event store's database, and how far each reader of the notification
log (the listing, the relay) has come."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

metadata = sa.MetaData()

positions = sa.Table(
    "oppstream_positions",
    metadata,
    sa.Column("reader", sa.String(50), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


def read_position(conn: sa.Connection, reader: str) -> int:
    found = conn.execute(
        sa.select(positions.c.position).where(positions.c.reader == reader)
    ).scalar_one_or_none()
    return int(found or 0)


def upsert(
    conn: sa.Connection, table: sa.Table, key: str, rising: str, rows: list[dict[str, Any]]
) -> None:
    """Insert or update by `key`, never letting `rising` go down (copies may race)."""
    insert = (
        (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table).values(rows)
    )
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[key],
            set_={c.name: insert.excluded[c.name] for c in table.columns if c.name != key},
            where=table.c[rising] < insert.excluded[rising],
        )
    )


def write_position(conn: sa.Connection, reader: str, position: int) -> None:
    upsert(conn, positions, "reader", "position", [{"reader": reader, "position": position}])


def set_position(conn: sa.Connection, reader: str, position: int) -> None:
    """Put `reader` at `position`, even back (the relay starting over on a new log)."""
    conn.execute(sa.delete(positions).where(positions.c.reader == reader))
    conn.execute(sa.insert(positions).values(reader=reader, position=position))
