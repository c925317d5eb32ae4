"""Test helpers of the reminders service: event envelopes as the relay publishes them, a
publisher that keeps what it is given, and a harness driving the consumer and scheduler on a
hand-moved clock."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import orjson

from chassis.kafka.logbook import LogBook, Partition
from chassis.kafka.producing import Landed, Outgoing, partition_for
from contracts import topics
from contracts.commands import CreateRenewalCommand, ReclaimCommand
from contracts.envelope import Envelope, event_id_for
from contracts.reminders import Reminder
from reminders.adapters.store import Store
from reminders.application.intake import EventIntake
from reminders.application.ownership import Ownership
from reminders.application.scheduler import Scheduler
from reminders.domain.clock import ManualClock
from reminders.domain.timers import Planner
from reminders.metrics import Metrics
from tests.support.principals import new_uscc

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 2, 30, tzinfo=UTC)
DAY = timedelta(days=1)
PARTITIONS = 6


class Opportunity:
    """Builds one opportunity's envelopes, version by version."""

    def __init__(
        self,
        tier: str = "KA",
        ownership: str = "PRIVATE",
        type_: str = "new",
        stage: str = "initial_contact",
        owner_id: str | None = "rep-1",
        team_id: str | None = "east",
        opportunity_id: str | None = None,
    ) -> None:
        self.id = opportunity_id or str(uuid4())
        self.tier, self.ownership, self.type, self.stage = tier, ownership, type_, stage
        self.owner_id, self.team_id = owner_id, team_id
        self.version = 0

    def event(self, event_type: str, at: datetime, **payload: Any) -> Envelope:
        self.version += 1
        return Envelope(
            event_id=event_id_for(self.id, self.version),
            event_type=event_type,
            schema_version=1,
            opportunity_id=self.id,
            version=self.version,
            occurred_at=at,
            recorded_at=at,
            actor="rep-1",
            payload=payload,
        )

    def create(self, at: datetime) -> Envelope:
        return self.event(
            "OpportunityCreated",
            at,
            type=self.type,
            pipeline_id=self.type,
            stage=self.stage,
            customer={
                "uscc": new_uscc(),
                "name": "ACME 有限公司",
                "tier": self.tier,
                "ownership": self.ownership,
            },
            owner_id=self.owner_id,
            team_id=self.team_id,
        )

    def advance(self, to_stage: str, at: datetime) -> Envelope:
        envelope = self.event("StageAdvanced", at, from_stage=self.stage, to_stage=to_stage)
        self.stage = to_stage
        return envelope

    def follow_up(self, at: datetime) -> Envelope:
        return self.event("FollowUpLogged", at, kind="call", note="called")

    def info(self, at: datetime) -> Envelope:
        return self.event("InfoUpdated", at, changes={"title": "new title"})

    def pause(self, at: datetime, until: date | None) -> Envelope:
        return self.event(
            "OpportunityPaused", at, reason="budget freeze", until=until and until.isoformat()
        )

    def resume(self, at: datetime) -> Envelope:
        return self.event("OpportunityResumed", at, paused_seconds=1.0)

    def defer(self, at: datetime, revisit_on: date) -> Envelope:
        return self.event(
            "OpportunityDeferred", at, reason="tender next year", revisit_on=revisit_on.isoformat()
        )

    def reactivate(self, at: datetime) -> Envelope:
        return self.event("OpportunityReactivated", at)

    def reclaim(self, at: datetime, command_id: str | None = None) -> Envelope:
        return self.event(
            "OpportunityReclaimed",
            at,
            reason="stale",
            previous_owner_id=self.owner_id,
            previous_status="open",
            rule_id="ka-default" if command_id else None,
            command_id=command_id,
        )

    def assign(self, at: datetime, owner_id: str, claimed: bool = False) -> Envelope:
        return self.event(
            "OpportunityAssigned",
            at,
            owner_id=owner_id,
            previous_owner_id=None,
            team_id=self.team_id,
            claimed=claimed,
        )

    def win(self, at: datetime, contract_end_on: date | None) -> Envelope:
        return self.event(
            "OpportunityWon",
            at,
            stage=self.stage,
            amount="1000.00",
            currency="CNY",
            contract_ref="C-1",
            contract_end_on=contract_end_on and contract_end_on.isoformat(),
        )

    def lose(self, at: datetime) -> Envelope:
        return self.event("OpportunityLost", at, stage=self.stage, reason="price")


@dataclass
class Record:
    """A consumed record, as aiokafka hands it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class KeepingPublisher:
    """Keeps every message it is asked to publish, in a log of six partitions a topic; fails
    while `failing` is set; `wipe` loses the log, as a broker started again empty."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self.failing = False
        self.ends: dict[Partition, int] = {}

    async def publish(self, messages: Sequence[Outgoing]) -> dict[Partition, Landed]:
        if self.failing:
            raise ConnectionError("the broker is down (test)")
        self.sent.extend(messages)
        landed: dict[Partition, Landed] = {}
        for m in messages:
            key = (m.topic, partition_for(m.key, list(range(PARTITIONS))))
            first = landed[key].first if key in landed else self.ends.get(key, 0)
            self.ends[key] = self.ends.get(key, 0) + 1
            landed[key] = Landed(first, self.ends[key])
        return landed

    async def lost(self, book: LogBook) -> list[str]:
        return book.lost_at(dict(self.ends))

    def wipe(self) -> None:
        self.ends.clear()

    def reminders(self) -> list[Reminder]:
        return [
            Reminder.model_validate_json(m.value) for m in self.sent if m.topic == topics.REMINDERS
        ]

    def commands(self) -> list[ReclaimCommand | CreateRenewalCommand]:
        found: list[ReclaimCommand | CreateRenewalCommand] = []
        for m in self.sent:
            if m.topic == topics.OPPORTUNITY_COMMANDS:
                data = orjson.loads(m.value)
                model = ReclaimCommand if data["command"] == "reclaim" else CreateRenewalCommand
                found.append(model.model_validate(data))
        return found


@dataclass
class Harness:
    """The consumer's intake and the scheduler on one store, one clock, a keeping publisher."""

    store: Store
    planner: Planner
    clock: ManualClock
    publisher: KeepingPublisher = field(default_factory=KeepingPublisher)
    metrics: Metrics = field(default_factory=Metrics)
    ownership: Ownership = field(default_factory=Ownership)
    batch: int = 500
    offsets: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.intake = EventIntake(self.store, self.planner, self.clock, self.metrics)
        self.ownership.set(range(PARTITIONS))
        self.scheduler = self.new_scheduler()

    def new_scheduler(self) -> Scheduler:
        """A fresh scheduler on the same store, as after a restart."""
        self.scheduler = Scheduler(
            self.store,
            self.planner,
            self.publisher,
            self.clock,
            self.ownership,
            self.metrics,
            self.batch,
            0.05,
        )
        return self.scheduler

    def feed(self, *envelopes: Envelope, partition: int | None = None) -> bool:
        return self.intake.apply([self.record(e, partition) for e in envelopes])

    def record(self, envelope: Envelope, partition: int | None = None) -> Record:
        """`envelope` as the next record of its partition."""
        p = partition if partition is not None else _partition(envelope.opportunity_id)
        offset = self.offsets.get(p, 0)
        self.offsets[p] = offset + 1
        return Record(
            topics.OPPORTUNITY_EVENTS,
            p,
            offset,
            envelope.opportunity_id.encode(),
            envelope.model_dump_json().encode(),
        )

    def redeliver(self, records: Sequence[Record]) -> bool:
        return self.intake.apply(records)

    async def tick(self) -> list[Reminder]:
        """Rounds until nothing more is due now; the reminders published by them."""
        before = len(self.publisher.sent)
        while await self.scheduler.round():
            pass
        published = self.publisher.sent[before:]
        return [
            Reminder.model_validate_json(m.value) for m in published if m.topic == topics.REMINDERS
        ]

    async def at(self, moment: datetime) -> list[Reminder]:
        """Move the clock to `moment` and run the scheduler."""
        self.clock.set(moment)
        return await self.tick()


def _partition(opportunity_id: str) -> int:
    return sum(opportunity_id.encode()) % PARTITIONS


def kinds(reminders: Sequence[Reminder]) -> list[str]:
    return [r.kind.value for r in reminders]
