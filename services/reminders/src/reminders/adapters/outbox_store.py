"""The fired log and the outbox: what each fired timer sends, and what the broker has not
acknowledged yet, with the deliveries of its reminder to channels; the reads of the store and the writes of its transactions; and the outbox's
log book (chassis.kafka.logbook), written with the rows marked sent."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from chassis.kafka.logbook import LogBook, Partition, new_epoch
from chassis.sql.logbooks import read_book, start_over, write_book
from contracts.opportunity import Status
from contracts.schedule import TimerKind
from reminders.adapters.schema import (
    Database,
    Work,
    binary,
    deliveries,
    fired,
    opportunities,
    outbox,
    publish_log,
)
from reminders.application.ports import Pending
from reminders.domain.delivery import PENDING, delivery_id_for
from reminders.domain.timers import Firing, SentCommand


class OutboxWork(Work):
    """A transaction's writes of fired timers."""

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
            "owner_id": [f.owner_id for f in firings],
        }
        if self.is_postgres:
            # One statement, one array per column: no per-row SQL to build or parse.
            added: dict[str, int] = dict(binary(self.conn, _RECORD_PG, columns))
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
                added = dict(queued.all())
        self._queue_deliveries([f for f in firings if f.reminder_id in added])
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

    def _queue_deliveries(self, firings: Sequence[Firing]) -> None:
        """One pending delivery per channel a newly fired reminder goes to, due at once."""
        rows = [
            {
                "delivery_id": delivery_id_for(f.reminder_id, channel),
                "opportunity_id": f.opportunity_id,
                "reminder_id": f.reminder_id,
                "channel_id": channel,
                "team_id": f.team_id,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": f.fired_at,
                "created_at": f.fired_at,
            }
            for f in firings
            for channel in f.channels
        ]
        if rows:
            self.conn.execute(deliveries.insert(), rows)

    def sent_commands(self) -> list[SentCommand]:
        """The commands fired timers sent (none waiting in the outbox), with their
        opportunities' facts, where those could still let a command take effect."""
        waiting = sa.exists().where(
            outbox.c.opportunity_id == fired.c.opportunity_id,
            outbox.c.reminder_id == fired.c.reminder_id,
        )
        rows = self.conn.execute(
            sa.select(
                fired.c.opportunity_id,
                fired.c.reminder_id,
                fired.c.partition,
                fired.c.kind,
                fired.c.command,
                opportunities.c.status,
                opportunities.c.last_progress_version,
            )
            .join(opportunities, opportunities.c.opportunity_id == fired.c.opportunity_id)
            .where(
                fired.c.command.isnot(None),
                opportunities.c.status.in_([Status.OPEN, Status.WON]),
                ~waiting,
            )
        )
        return [
            SentCommand(o, r, p, TimerKind(kind), bytes(command), Status(status), int(version))
            for o, r, p, kind, command, status, version in rows
        ]

    def send_again(self, commands: Sequence[SentCommand]) -> None:
        """Queue these commands again, without their reminders."""
        if commands:
            self.conn.execute(
                outbox.insert(),
                [
                    {
                        "opportunity_id": c.opportunity_id,
                        "reminder_id": c.reminder_id,
                        "partition": c.partition,
                        "command_only": True,
                    }
                    for c in commands
                ],
            )

    def start_over_publishing(self) -> LogBook:
        """Forget the log the broker lost: a new epoch, no ends."""
        return start_over(self.conn, publish_log)


class OutboxReads(Database):
    """The store's reads of the fired log and the outbox, and the marking of rows sent."""

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
                sa.case((outbox.c.command_only, sa.null()), else_=fired.c.reminder),
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

    def sent(self, seqs: Sequence[int], book: LogBook, changed: set[Partition]) -> None:
        """The broker acknowledged these outbox rows, which ended the partitions `changed` as
        `book` says."""
        if not seqs:
            return
        with self.engine.begin() as conn:
            write_book(conn, publish_log, book, changed)
            if self.is_postgres:
                # Losing this in a database crash only publishes the rows again, with the
                # same reminder ids; not waiting for the flush keeps the next round going.
                conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
                binary(conn, _SENT_PG, {"seqs": list(seqs)})
                return
            conn.execute(outbox.delete().where(outbox.c.seq.in_(list(seqs))))

    def publish_book(self) -> LogBook:
        """The outbox's log book; with nothing stored, an empty one in a new epoch."""
        with self._read() as conn:
            return read_book(conn, publish_log, new_epoch())

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


_RECORD_PG = """
    WITH added AS (
        INSERT INTO reminders_fired
            (opportunity_id, reminder_id, partition, kind, rule_id, team_id, due_at,
             fired_at, reminder, command, owner_id)
        SELECT * FROM unnest(
            %(opportunity_id)b::text[], %(reminder_id)b::text[], %(partition)b::int[],
            %(kind)b::text[], %(rule_id)b::text[], %(team_id)b::text[],
            %(due_at)b::timestamptz[], %(fired_at)b::timestamptz[], %(reminder)b::bytea[],
            %(command)b::bytea[], %(owner_id)b::text[])
        ON CONFLICT DO NOTHING
        RETURNING opportunity_id, reminder_id, partition
    )
    INSERT INTO reminders_outbox (opportunity_id, reminder_id, partition)
    SELECT opportunity_id, reminder_id, partition FROM added
    RETURNING reminder_id, seq
"""


_SENT_PG = "DELETE FROM reminders_outbox WHERE seq = ANY(%(seqs)b::bigint[])"
