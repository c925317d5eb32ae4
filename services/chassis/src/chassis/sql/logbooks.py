"""A producer's log book (chassis.kafka.logbook) kept in its own database, in the transaction
that marks what it published: one row per partition it filled, with the epoch."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from chassis.kafka.logbook import LogBook, Partition, new_epoch


def logbook_table(name: str, metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("epoch", sa.String(64), nullable=False),
    )


def read_book(conn: sa.Connection, table: sa.Table, epoch: str) -> LogBook:
    """The stored book; with nothing stored, an empty one in `epoch`."""
    rows = conn.execute(sa.select(table)).all()
    if not rows:
        return LogBook(epoch)
    return LogBook(
        rows[0].epoch, {(row.topic, int(row.partition)): int(row.next_offset) for row in rows}
    )


def write_book(
    conn: sa.Connection, table: sa.Table, book: LogBook, changed: set[Partition] | None = None
) -> None:
    """Store the ends (those in `changed`, else all) in the caller's transaction; of two
    producers writing one partition's end in the same epoch, the further end stays."""
    keys = sorted(book.ends if changed is None else changed)
    if not keys:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["topic", "partition"],
            set_={"next_offset": insert.excluded.next_offset, "epoch": insert.excluded.epoch},
            where=sa.or_(
                table.c.next_offset < insert.excluded.next_offset,
                table.c.epoch != insert.excluded.epoch,
            ),
        ),
        [
            {"topic": t, "partition": p, "next_offset": book.ends[(t, p)], "epoch": book.epoch}
            for t, p in keys
        ],
    )


def start_over(conn: sa.Connection, table: sa.Table) -> LogBook:
    """Forget the lost log (in the caller's transaction): a new epoch, no ends."""
    conn.execute(sa.delete(table))
    return LogBook(new_epoch())
