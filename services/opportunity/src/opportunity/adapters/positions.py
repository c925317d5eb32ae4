"""Tables of ours in the event store's database, how far each reader of the notification log
(the listings, the relay) has come, and how a listing keeps up with the log."""

import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import Notification
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


class LogTable:
    """A table kept up with the notification log: for each page of notifications `read` gives
    after the reader's position, the `row` of every aggregate they name is upserted by `key`
    (never to a lower `version`) with the new position, in one transaction."""

    def __init__(  # noqa: PLR0913 - the table, its reader and how to read and make rows
        self,
        engine: sa.Engine,
        reader: str,
        table: sa.Table,
        key: str,
        read: Callable[[int, int], Sequence[Notification]],
        row: Callable[[UUID], dict[str, Any]],
        batch: int = 500,
    ) -> None:
        self._engine, self._reader, self._table, self._key = engine, reader, table, key
        self._read, self._row, self._batch = read, row, batch
        self._lock = threading.Lock()

    def catch_up(self) -> int:
        """Apply what was recorded since the last catch-up; the new position."""
        with self._lock:
            with self._engine.connect() as conn:
                done = read_position(conn, self._reader)
            while True:
                recorded = self._read(done, self._batch)
                if not recorded:
                    return done
                ids = {notification.originator_id for notification in recorded}
                rows = [self._row(UUID(str(i))) for i in ids]
                done = recorded[-1].id
                with self._engine.begin() as conn:
                    upsert(conn, self._table, self._key, "version", rows)
                    write_position(conn, self._reader, done)
