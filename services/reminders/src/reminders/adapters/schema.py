"""The reminders database's schema and engine (SQLite or PostgreSQL, SQLAlchemy Core; the
Alembic migrations next to this module create it), with what the stores built on it share.

- `reminders_opportunity`: one row per opportunity — the facts its timers follow from, the
  version of the last event applied (redeliveries are recognised by it), the Kafka partition
  it lives on, and `next_due_at`: when the scheduler must look at it next (indexed; NULL when
  no timer is running). A tick reads `WHERE next_due_at <= now` on that index, so its cost
  follows what is due, not how many opportunities there are.
- `reminders_fired`: every timer fired, with the reminder and command bytes it sends; its key
  (opportunity, reminder_id) makes a timer fire once whoever fires it, and lists an
  opportunity's reminders for the explanation and the inbox (by owner, team, time).
- `reminders_delivery`: one row per fired reminder and delivery channel it goes to (SPEC
  §10.2), written in the same transaction as the firing: pending (with when to try next),
  delivered (never sent again) or parked (after the rules' attempts), and how often it was
  tried.
- `reminders_outbox`: the fired timers the broker has not acknowledged yet, oldest first;
  written in the same transaction as the firing, deleted once acknowledged; `command_only`
  rows send a command again after the broker lost its log, without the reminder.
- `reminders_publish_log`: the outbox's log book (chassis.kafka.logbook): the epoch it
  publishes in and where each partition it filled ends.
- `reminders_position`: per partition of `crm.opportunity.events`, the next offset to read,
  written in the same transaction as the facts the records changed.
- `reminders_meta`: what the timers were computed under (the rules' fingerprint).
"""

import hashlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite

from chassis.sql.engines import UtcDateTime, postgres_engine, sqlite_engine
from chassis.sql.logbooks import logbook_table

MIGRATIONS = Path(__file__).with_name("migrations")
_READING = "reminders_reading"
VERSION_TABLE = "reminders_alembic_version"


metadata = sa.MetaData()

opportunities = sa.Table(
    "reminders_opportunity",
    metadata,
    sa.Column("opportunity_id", sa.String(64), primary_key=True),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("tier", sa.String(10), nullable=False),
    sa.Column("ownership", sa.String(20), nullable=False),
    sa.Column("stage", sa.String(50), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("owner_id", sa.String(100)),
    sa.Column("team_id", sa.String(100)),
    sa.Column("last_progress_at", UtcDateTime, nullable=False),
    sa.Column("last_progress_version", sa.Integer, nullable=False),
    sa.Column("paused_until", sa.Date),
    sa.Column("revisit_on", sa.Date),
    sa.Column("contract_end_on", sa.Date),
    sa.Column("next_due_at", UtcDateTime),
)
sa.Index(
    "reminders_opportunity_due",
    opportunities.c.next_due_at,
    postgresql_where=opportunities.c.next_due_at.isnot(None),
    sqlite_where=opportunities.c.next_due_at.isnot(None),
)

fired = sa.Table(
    "reminders_fired",
    metadata,
    sa.Column("opportunity_id", sa.String(64), primary_key=True),
    sa.Column("reminder_id", sa.String(36), primary_key=True),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("rule_id", sa.String(100), nullable=False),
    sa.Column("team_id", sa.String(100)),
    sa.Column("due_at", UtcDateTime, nullable=False),
    sa.Column("fired_at", UtcDateTime, nullable=False),
    sa.Column("reminder", sa.LargeBinary),
    sa.Column("command", sa.LargeBinary),
    sa.Column("owner_id", sa.String(100)),
)
sa.Index("reminders_fired_owner", fired.c.owner_id, fired.c.fired_at)
sa.Index("reminders_fired_team", fired.c.team_id, fired.c.fired_at)
sa.Index("reminders_fired_at", fired.c.fired_at)

deliveries = sa.Table(
    "reminders_delivery",
    metadata,
    sa.Column("delivery_id", sa.String(36), primary_key=True),
    sa.Column("opportunity_id", sa.String(64), nullable=False),
    sa.Column("reminder_id", sa.String(36), nullable=False),
    sa.Column("channel_id", sa.String(100), nullable=False),
    sa.Column("team_id", sa.String(100)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("last_error", sa.String(200)),
    sa.Column("delivered_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
)
sa.Index(
    "reminders_delivery_due",
    deliveries.c.next_attempt_at,
    postgresql_where=deliveries.c.status == "pending",
    sqlite_where=deliveries.c.status == "pending",
)
sa.Index("reminders_delivery_reminder", deliveries.c.reminder_id)
sa.Index("reminders_delivery_status", deliveries.c.status, deliveries.c.created_at)

outbox = sa.Table(
    "reminders_outbox",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("opportunity_id", sa.String(64), nullable=False),
    sa.Column("reminder_id", sa.String(36), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("command_only", sa.Boolean, nullable=False, server_default=sa.false()),
)

publish_log = logbook_table("reminders_publish_log", metadata)

positions = sa.Table(
    "reminders_position",
    metadata,
    sa.Column("topic", sa.String(200), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    # The log epoch of the record before next_offset (chassis.kafka.logwatch).
    sa.Column("log_epoch", sa.String(64)),
)

meta = sa.Table(
    "reminders_meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        return sqlite_engine(url, 30, _begin)
    return postgres_engine(
        url,
        pool_size=5,
        max_overflow=5,
        # The due-time probe must be an ordered index scan that stops after its LIMIT; a
        # bitmap scan would read every due entry (after a wave, every dead one too) and sort.
        options="-c enable_bitmapscan=off",
    )


def _begin(connection: sa.Connection) -> str:
    # A unit of work takes the write lock at once, so two writers queue up instead of failing
    # to upgrade a read lock (SQLITE_BUSY); a read (`Store._read`) takes none.
    reading = connection.get_execution_options().get(_READING, False)
    return "BEGIN" if reading else "BEGIN IMMEDIATE"


class Database:
    """The engine, with connections for reading only; reminders.adapters.store adds the rest."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    def _read(self) -> sa.Connection:
        """A connection for reading only."""
        return self.engine.connect().execution_options(**{_READING: True})

    def migrate(self) -> None:
        """Bring the schema to the newest revision; copies starting together take turns."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            if self.is_postgres:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(sa.text("SELECT 1"))


class Work:
    """One transaction on the reminders database; reminders.adapters.store adds the writes."""

    def __init__(self, conn: sa.Connection, is_postgres: bool) -> None:
        self.conn, self.is_postgres = conn, is_postgres

    def upsert(
        self,
        table: sa.Table,
        keys: list[str],
        rows: list[dict[str, Any]],
        rising: str | None = None,
    ) -> None:
        insert = _dialect(self.conn).insert(table)
        update = {c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys}
        where = table.c[rising] < insert.excluded[rising] if rising is not None else None
        self.conn.execute(
            insert.on_conflict_do_update(index_elements=keys, set_=update, where=where), rows
        )


# The stores' PostgreSQL statements take one array per column, with binary parameters
# (`%(name)b`): psycopg dumps a list of thousands of values as a binary array about ten times
# faster than as text, and the server parses one statement instead of thousands of rows of SQL.
def binary(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    """Run psycopg SQL in the connection's transaction, with binary parameters."""
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []


def _dialect(conn: sa.Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"oppstream.reminders.migrate").digest()[:8], "big", signed=True
)
