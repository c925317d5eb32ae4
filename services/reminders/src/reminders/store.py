"""The reminders database (SQLite or PostgreSQL, SQLAlchemy Core; schema by Alembic).

- `reminders_opportunity`: one row per opportunity — the facts its timers follow from, the
  version of the last event applied (redeliveries are recognised by it), the Kafka partition
  it lives on, and `next_due_at`: when the scheduler must look at it next (indexed; NULL when
  no timer is running). A tick reads `WHERE next_due_at <= now` on that index, so its cost
  follows what is due, not how many opportunities there are.
- `reminders_fired`: every timer fired, with the reminder and command bytes it sends; its key
  (opportunity, reminder_id) makes a timer fire once whoever fires it, and lists an
  opportunity's reminders for the explanation.
- `reminders_outbox`: the fired timers the broker has not acknowledged yet, oldest first;
  written in the same transaction as the firing, deleted once acknowledged.
- `reminders_position`: per partition of `crm.opportunity.events`, the next offset to read,
  written in the same transaction as the facts the records changed.
"""

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite

from contracts.logwatch import Mark
from contracts.opportunity import Status
from contracts.stores import UtcDateTime, postgres_engine, sqlite_engine
from reminders.facts import OpportunityFacts
from reminders.timers import Firing

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
)

outbox = sa.Table(
    "reminders_outbox",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("opportunity_id", sa.String(64), nullable=False),
    sa.Column("reminder_id", sa.String(36), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
)

positions = sa.Table(
    "reminders_position",
    metadata,
    sa.Column("topic", sa.String(200), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    # The log epoch of the record before next_offset (contracts.logwatch).
    sa.Column("log_epoch", sa.String(64)),
)

meta = sa.Table(
    "reminders_meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Planned:
    """Facts to save and when the scheduler must look at the opportunity next."""

    facts: OpportunityFacts
    next_due_at: datetime | None


@dataclass(frozen=True, slots=True)
class Pending:
    """An outbox row: what to publish for one fired timer."""

    seq: int
    reminder_id: str
    opportunity_id: str
    partition: int
    reminder: bytes | None
    command: bytes | None


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


class Store:
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

    @contextlib.contextmanager
    def begin(self) -> Iterator["Transaction"]:
        with self.engine.begin() as conn:
            yield Transaction(conn, self.is_postgres)

    def positions(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """The next offset to read per partition, where one is stored."""
        return {p: m.next_offset for p, m in self.marks(topic, partitions).items()}

    def marks(self, topic: str, partitions: Iterable[int]) -> dict[int, Mark]:
        """The next offset to read per partition, where one is stored, with its log epoch."""
        wanted = list(partitions)
        if not wanted:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                sa.select(
                    positions.c.partition, positions.c.next_offset, positions.c.log_epoch
                ).where(positions.c.topic == topic, positions.c.partition.in_(wanted))
            )
            return {int(p): Mark(int(o), e) for p, o, e in rows}

    def restart_partition(self, topic: str, partition: int) -> None:
        """The partition's log was lost: read it again from its beginning (what was taken
        stays; events are taken once by their version)."""
        with self.begin() as tx:
            tx.upsert(
                positions,
                ["topic", "partition"],
                [{"topic": topic, "partition": partition, "next_offset": 0, "log_epoch": None}],
            )

    def pending(self, partitions: Sequence[int], limit: int) -> list[Pending]:
        """Fired but not yet acknowledged by the broker, oldest first."""
        if not partitions:
            return []
        query = (
            sa.select(
                outbox.c.seq,
                outbox.c.reminder_id,
                outbox.c.opportunity_id,
                outbox.c.partition,
                fired.c.reminder,
                fired.c.command,
            )
            .join(
                fired,
                sa.and_(
                    fired.c.opportunity_id == outbox.c.opportunity_id,
                    fired.c.reminder_id == outbox.c.reminder_id,
                ),
            )
            .where(outbox.c.partition.in_(partitions))
            .order_by(outbox.c.seq)
            .limit(limit)
        )
        with self._read() as conn:
            return [Pending(*row) for row in conn.execute(query)]

    def sent(self, seqs: Sequence[int]) -> None:
        """The broker acknowledged these outbox rows."""
        if not seqs:
            return
        with self.engine.begin() as conn:
            if self.is_postgres:
                # Losing this in a database crash only publishes the rows again, with the
                # same reminder ids; not waiting for the flush keeps the next round going.
                conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
                _binary(conn, _SENT_PG, {"seqs": list(seqs)})
                return
            conn.execute(outbox.delete().where(outbox.c.seq.in_(list(seqs))))

    def get_meta(self, key: str) -> str | None:
        with self._read() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
            return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with self.begin() as tx:
            tx.upsert(meta, ["key"], [{"key": key, "value": value}])

    def facts(self, opportunity_id: str) -> tuple[OpportunityFacts, datetime | None] | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(opportunities).where(opportunities.c.opportunity_id == opportunity_id)
            ).first()
        return None if row is None else (facts_of(row), row.next_due_at)

    def fired(self, opportunity_id: str) -> list[dict[str, Any]]:
        """The timers this opportunity fired, oldest first, with their bytes and whether the
        broker acknowledged them yet."""
        waiting = sa.exists().where(
            outbox.c.opportunity_id == fired.c.opportunity_id,
            outbox.c.reminder_id == fired.c.reminder_id,
        )
        with self._read() as conn:
            rows = conn.execute(
                sa.select(fired, waiting.label("pending"))
                .where(fired.c.opportunity_id == opportunity_id)
                .order_by(fired.c.fired_at, fired.c.due_at)
            )
            return [dict(row._mapping) for row in rows]

    def count_pending(self) -> int:
        """Fired timers the broker has not acknowledged yet (all partitions)."""
        with self._read() as conn:
            found = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
        return int(found)

    def replan(
        self,
        plan: Callable[[OpportunityFacts], datetime | None],
        after: str,
        limit: int,
    ) -> str | None:
        """Recompute `next_due_at` of the next `limit` opportunities after id `after` (rules
        changed); the last id done, or None at the end."""
        with self.begin() as tx:
            rows = tx.conn.execute(
                sa.select(opportunities)
                .where(opportunities.c.opportunity_id > after)
                .order_by(opportunities.c.opportunity_id)
                .limit(limit)
            ).all()
            if not rows:
                return None
            tx.reschedule([(row.opportunity_id, plan(facts_of(row))) for row in rows])
            return str(rows[-1].opportunity_id)


class Transaction:
    """One unit of work on the reminders database."""

    def __init__(self, conn: sa.Connection, is_postgres: bool) -> None:
        self.conn, self.is_postgres = conn, is_postgres

    def load(self, ids: Iterable[str]) -> dict[str, OpportunityFacts]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = self.conn.execute(
            sa.select(opportunities).where(opportunities.c.opportunity_id.in_(wanted))
        )
        return {row.opportunity_id: facts_of(row) for row in rows}

    def save(self, planned: Sequence[Planned]) -> None:
        """Insert or update, never letting an opportunity's version go down (a copy that
        lost its partition may still be finishing a batch)."""
        if planned:
            self.upsert(
                opportunities,
                ["opportunity_id"],
                [row_of(p.facts, p.next_due_at) for p in planned],
                rising="version",
            )

    def advance(
        self, topic: str, next_offsets: dict[int, int], epochs: dict[int, str | None] | None = None
    ) -> None:
        """Store how far each partition got (never back: copies may race), with the log
        epoch of its last record."""
        if next_offsets:
            self.upsert(
                positions,
                ["topic", "partition"],
                [
                    {
                        "topic": topic,
                        "partition": p,
                        "next_offset": o,
                        "log_epoch": (epochs or {}).get(p),
                    }
                    for p, o in sorted(next_offsets.items())
                ],
                rising="next_offset",
            )

    def due(self, partitions: Sequence[int], now: datetime, limit: int) -> list[OpportunityFacts]:
        """Opportunities of `partitions` whose next look is due, most overdue first. On
        PostgreSQL the rows stay locked until commit and rows another copy holds are skipped."""
        if not partitions:
            return []
        query = (
            sa.select(opportunities)
            .where(
                opportunities.c.next_due_at <= now,
                opportunities.c.partition.in_(list(partitions)),
            )
            .order_by(opportunities.c.next_due_at)
            .limit(limit)
        )
        if self.is_postgres:
            query = query.with_for_update(skip_locked=True)
        return [facts_of(row) for row in self.conn.execute(query)]

    def record(self, firings: Sequence[Firing]) -> list[Pending]:
        """Add the fired timers to the log and the outbox; one fired before (same reminder
        id) is left alone. Returns the outbox rows added."""
        if not firings:
            return []
        columns = {
            "opportunity_id": [f.opportunity_id for f in firings],
            "reminder_id": [f.reminder_id for f in firings],
            "partition": [f.partition for f in firings],
            "kind": [f.kind.value for f in firings],
            "rule_id": [f.rule_id for f in firings],
            "team_id": [f.team_id for f in firings],
            "due_at": [f.due_at for f in firings],
            "fired_at": [f.fired_at for f in firings],
            "reminder": [f.reminder for f in firings],
            "command": [f.command for f in firings],
        }
        if self.is_postgres:
            # One statement, one array per column: no per-row SQL to build or parse.
            added: dict[str, int] = dict(_binary(self.conn, _RECORD_PG, columns))
        else:
            rows = [
                dict(zip(columns, values, strict=True))
                for values in zip(*columns.values(), strict=True)
            ]
            new = self.conn.execute(
                sqlite.insert(fired)
                .on_conflict_do_nothing()
                .returning(fired.c.opportunity_id, fired.c.reminder_id, fired.c.partition),
                rows,
            ).all()
            added = {}
            if new:
                queued = self.conn.execute(
                    outbox.insert().returning(outbox.c.reminder_id, outbox.c.seq),
                    [{"opportunity_id": o, "reminder_id": r, "partition": p} for o, r, p in new],
                )
                added = dict(queued.tuples().all())
        return sorted(
            (
                Pending(
                    added[f.reminder_id],
                    f.reminder_id,
                    f.opportunity_id,
                    f.partition,
                    f.reminder,
                    f.command,
                )
                for f in firings
                if f.reminder_id in added
            ),
            key=lambda p: p.seq,
        )

    def reschedule(self, looks: Sequence[tuple[str, datetime | None]]) -> None:
        if not looks:
            return
        if self.is_postgres:
            _binary(
                self.conn,
                _RESCHEDULE_PG,
                {"ids": [oid for oid, _ in looks], "dues": [due for _, due in looks]},
            )
            return
        self.conn.execute(
            opportunities.update()
            .where(opportunities.c.opportunity_id == sa.bindparam("oid"))
            .values(next_due_at=sa.bindparam("due")),
            [{"oid": oid, "due": due} for oid, due in looks],
        )

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


def facts_of(row: Any) -> OpportunityFacts:
    return OpportunityFacts(
        opportunity_id=row.opportunity_id,
        partition=row.partition,
        version=row.version,
        type=row.type,
        tier=row.tier,
        ownership=row.ownership,
        stage=row.stage,
        status=Status(row.status),
        owner_id=row.owner_id,
        team_id=row.team_id,
        last_progress_at=row.last_progress_at,
        last_progress_version=row.last_progress_version,
        paused_until=row.paused_until,
        revisit_on=row.revisit_on,
        contract_end_on=row.contract_end_on,
    )


def row_of(facts: OpportunityFacts, next_due_at: datetime | None) -> dict[str, Any]:
    return {
        "opportunity_id": facts.opportunity_id,
        "partition": facts.partition,
        "version": facts.version,
        "type": facts.type,
        "tier": facts.tier,
        "ownership": facts.ownership,
        "stage": facts.stage,
        "status": facts.status.value,
        "owner_id": facts.owner_id,
        "team_id": facts.team_id,
        "last_progress_at": facts.last_progress_at,
        "last_progress_version": facts.last_progress_version,
        "paused_until": facts.paused_until,
        "revisit_on": facts.revisit_on,
        "contract_end_on": facts.contract_end_on,
        "next_due_at": next_due_at,
    }


# PostgreSQL statements with one array per column, run with binary parameters (`%(name)b`):
# psycopg dumps a list of thousands of values as a binary array about ten times faster than
# as text, and the server parses one statement instead of thousands of rows of SQL.
_RECORD_PG = """
    WITH added AS (
        INSERT INTO reminders_fired
            (opportunity_id, reminder_id, partition, kind, rule_id, team_id, due_at,
             fired_at, reminder, command)
        SELECT * FROM unnest(
            %(opportunity_id)b::text[], %(reminder_id)b::text[], %(partition)b::int[],
            %(kind)b::text[], %(rule_id)b::text[], %(team_id)b::text[],
            %(due_at)b::timestamptz[], %(fired_at)b::timestamptz[], %(reminder)b::bytea[],
            %(command)b::bytea[])
        ON CONFLICT DO NOTHING
        RETURNING opportunity_id, reminder_id, partition
    )
    INSERT INTO reminders_outbox (opportunity_id, reminder_id, partition)
    SELECT opportunity_id, reminder_id, partition FROM added
    RETURNING reminder_id, seq
"""

_RESCHEDULE_PG = """
    UPDATE reminders_opportunity AS o SET next_due_at = looks.due
    FROM unnest(%(ids)b::text[], %(dues)b::timestamptz[]) AS looks (oid, due)
    WHERE o.opportunity_id = looks.oid
"""

_SENT_PG = "DELETE FROM reminders_outbox WHERE seq = ANY(%(seqs)b::bigint[])"


def _binary(conn: sa.Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    """Run psycopg SQL in the connection's transaction, with binary parameters."""
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []


def _dialect(conn: sa.Connection) -> Any:
    return postgresql if conn.dialect.name == "postgresql" else sqlite


_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"oppstream.reminders.migrate").digest()[:8], "big", signed=True
)
