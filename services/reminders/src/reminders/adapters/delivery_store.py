"""The reminders' inbox and their deliveries to channels in the store: taking the due
deliveries (with a lease, so a crash sends one at most once more), recording what the
channel answered, listing and retrying parked ones, and reading fired reminders back."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from reminders.adapters.schema import Database, deliveries, fired
from reminders.application.ports import Attempted, DueDelivery
from reminders.domain.delivery import DELIVERED, PARKED, PENDING


@dataclass(frozen=True, slots=True)
class InboxQuery:
    owner_id: str | None
    team_id: str | None
    kind: str | None
    since: datetime | None
    limit: int


class DeliveryReads(Database):
    def take_due(self, now: datetime, until: datetime, limit: int) -> list[DueDelivery]:
        """The pending deliveries due at `now`, oldest first, each counted as one more
        attempt and held until `until` (another round or copy leaves them alone until then)."""
        due = (deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)
        # Most rounds find nothing: ask without the write lock (SQLite) first.
        with self._read() as conn:
            if (
                conn.execute(sa.select(deliveries.c.delivery_id).where(*due).limit(1)).first()
                is None
            ):
                return []
        query = (
            sa.select(
                deliveries.c.delivery_id,
                deliveries.c.channel_id,
                deliveries.c.attempts,
                fired.c.reminder,
            )
            .join(
                fired,
                sa.and_(
                    fired.c.opportunity_id == deliveries.c.opportunity_id,
                    fired.c.reminder_id == deliveries.c.reminder_id,
                ),
            )
            .where(*due)
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(of=deliveries, skip_locked=True)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(query).all()
            if not rows:
                return []
            conn.execute(
                deliveries.update()
                .where(deliveries.c.delivery_id.in_([r.delivery_id for r in rows]))
                .values(attempts=deliveries.c.attempts + 1, next_attempt_at=until)
            )
        return [
            DueDelivery(r.delivery_id, r.channel_id, r.attempts + 1, bytes(r.reminder))
            for r in rows
        ]

    def attempted(self, outcomes: Sequence[Attempted]) -> None:
        """Record what the channels answered: delivered (for good), failed (tried again at its
        time) or parked."""
        if not outcomes:
            return
        with self.engine.begin() as conn:
            for outcome in outcomes:
                values: dict[str, Any] = {"status": outcome.status, "last_error": outcome.error}
                if outcome.status == DELIVERED:
                    values["delivered_at"] = outcome.at
                elif outcome.next_attempt_at is not None:
                    values["next_attempt_at"] = outcome.next_attempt_at
                conn.execute(
                    deliveries.update()
                    .where(
                        deliveries.c.delivery_id == outcome.delivery_id,
                        deliveries.c.status == PENDING,
                    )
                    .values(**values)
                )

    def deliveries(
        self, status: str | None, channel_id: str | None, team_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Deliveries, newest first, of a status, channel and team when given."""
        query = (
            sa.select(deliveries, fired.c.kind)
            .join(
                fired,
                sa.and_(
                    fired.c.opportunity_id == deliveries.c.opportunity_id,
                    fired.c.reminder_id == deliveries.c.reminder_id,
                ),
            )
            .order_by(deliveries.c.created_at.desc(), deliveries.c.delivery_id)
            .limit(limit)
        )
        for column, value in (
            (deliveries.c.status, status),
            (deliveries.c.channel_id, channel_id),
            (deliveries.c.team_id, team_id),
        ):
            if value is not None:
                query = query.where(column == value)
        with self._read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(deliveries).where(deliveries.c.delivery_id == delivery_id)
            ).first()
        return None if row is None else dict(row._mapping)

    def retry(self, delivery_id: str, now: datetime) -> bool:
        """A parked delivery goes back to pending, due now, with no attempts; False when it
        was not parked (any more)."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                deliveries.update()
                .where(deliveries.c.delivery_id == delivery_id, deliveries.c.status == PARKED)
                .values(status=PENDING, attempts=0, next_attempt_at=now, last_error=None)
            ).rowcount
        return bool(changed)

    def count_parked(self) -> int:
        with self._read() as conn:
            found = conn.execute(
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(deliveries.c.status == PARKED)
            ).scalar_one()
        return int(found)

    def inbox(self, query: InboxQuery) -> list[dict[str, Any]]:
        """Fired reminders, newest first, with their deliveries."""
        select = (
            sa.select(fired.c.reminder)
            .where(fired.c.reminder.isnot(None))
            .order_by(fired.c.fired_at.desc(), fired.c.reminder_id)
            .limit(query.limit)
        )
        if query.owner_id is not None:
            select = select.where(fired.c.owner_id == query.owner_id)
        if query.team_id is not None:
            select = select.where(fired.c.team_id == query.team_id)
        if query.kind is not None:
            select = select.where(fired.c.kind == query.kind)
        if query.since is not None:
            select = select.where(fired.c.fired_at >= query.since)
        with self._read() as conn:
            found = [orjson.loads(row.reminder) for row in conn.execute(select)]
            sent: dict[str, list[dict[str, Any]]] = {}
            if found:
                rows = conn.execute(
                    sa.select(
                        deliveries.c.reminder_id,
                        deliveries.c.channel_id,
                        deliveries.c.status,
                        deliveries.c.attempts,
                    )
                    .where(deliveries.c.reminder_id.in_([r["reminder_id"] for r in found]))
                    .order_by(deliveries.c.channel_id)
                )
                for row in rows:
                    sent.setdefault(row.reminder_id, []).append(
                        {
                            "channel_id": row.channel_id,
                            "status": row.status,
                            "attempts": row.attempts,
                        }
                    )
        return [{**r, "deliveries": sent.get(r["reminder_id"], [])} for r in found]
