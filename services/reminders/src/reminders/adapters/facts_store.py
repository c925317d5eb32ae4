"""Opportunity facts, their next looks, the positions read up to and what the timers were
computed under: the reads of the store and the writes of its transactions."""

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from chassis.kafka.logwatch import Mark
from contracts.opportunity import Status
from reminders.adapters.schema import Database, Work, binary, meta, opportunities, positions
from reminders.application.ports import Planned
from reminders.domain.facts import OpportunityFacts


class FactsWork(Work):
    """A transaction's writes of facts, next looks and positions."""

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

    def reschedule(self, looks: Sequence[tuple[str, datetime | None]]) -> None:
        if not looks:
            return
        if self.is_postgres:
            binary(
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


class FactsReads(Database):
    """The store's reads of facts and positions, and its own small writes of them."""

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
        with self.engine.begin() as conn:
            FactsWork(conn, self.is_postgres).upsert(
                positions,
                ["topic", "partition"],
                [{"topic": topic, "partition": partition, "next_offset": 0, "log_epoch": None}],
            )

    def get_meta(self, key: str) -> str | None:
        with self._read() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
            return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            FactsWork(conn, self.is_postgres).upsert(meta, ["key"], [{"key": key, "value": value}])

    def facts(self, opportunity_id: str) -> tuple[OpportunityFacts, datetime | None] | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(opportunities).where(opportunities.c.opportunity_id == opportunity_id)
            ).first()
        return None if row is None else (facts_of(row), row.next_due_at)

    def replan(
        self,
        plan: Callable[[OpportunityFacts], datetime | None],
        after: str,
        limit: int,
    ) -> str | None:
        """Recompute `next_due_at` of the next `limit` opportunities after id `after` (rules
        changed); the last id done, or None at the end."""
        with self.engine.begin() as conn:
            tx = FactsWork(conn, self.is_postgres)
            rows = conn.execute(
                sa.select(opportunities)
                .where(opportunities.c.opportunity_id > after)
                .order_by(opportunities.c.opportunity_id)
                .limit(limit)
            ).all()
            if not rows:
                return None
            tx.reschedule([(row.opportunity_id, plan(facts_of(row))) for row in rows])
            return str(rows[-1].opportunity_id)


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
    return {**facts.as_dict(), "next_due_at": next_due_at}


_RESCHEDULE_PG = """
    UPDATE reminders_opportunity AS o SET next_due_at = looks.due
    FROM unnest(%(ids)b::text[], %(dues)b::timestamptz[]) AS looks (oid, due)
    WHERE o.opportunity_id = looks.oid
"""
