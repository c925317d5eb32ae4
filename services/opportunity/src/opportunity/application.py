"""OpportunityApp: the event-sourced application — commands, queries, group commit.

Commands run as units of work. Many concurrent ones are executed together and saved in one
transaction (group commit); when that transaction conflicts, each is retried on its own so
every caller gets its own answer.
"""

import contextlib
from collections.abc import Callable, Collection, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar, cast
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    JSONTranscoder,
    Notification,
    RecordConflictError,
    StoredEvent,
    Transcoding,
)
from eventsourcing.postgres import PostgresAggregateRecorder
from psycopg.sql import SQL, Composed, Identifier

from chassis.auth import Principal
from chassis.sql.errors import unavailable
from contracts.commands import CreateRenewalCommand, ReclaimCommand
from contracts.customer import Customer
from contracts.leads import QualifiedLead
from contracts.opportunity import PAYLOADS, OpportunityType, Status
from contracts.rules import Rulebook
from opportunity import access
from opportunity.domain import ActiveOpportunityIndex, CustomerAccount, Opportunity
from opportunity.errors import DomainError, DuplicateOpportunity, InvalidValue
from opportunity.idempotency import IdempotentAnswer

T = TypeVar("T")
AggregateT = TypeVar("AggregateT", bound=Aggregate)

OPPORTUNITY_TOPICS = [
    f"{Opportunity.__module__}:{Opportunity.__qualname__}.{name}" for name in PAYLOADS
]


DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")


class NotFound(DomainError):
    code = "not_found"


class VersionMismatch(DomainError):
    """`If-Match` named another version than the current one (HTTP 412)."""

    code = "version_mismatch"


class Conflict(DomainError):
    """A concurrent command changed the same aggregates first (HTTP 409)."""

    code = "concurrent_change"


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def newer_events_query(events_table: str) -> Composed:
    """The events after given versions of given aggregates. LATERAL: one primary-key lookup
    per aggregate, whatever the size of the table (a plain join lets the planner scan the
    whole table once it estimates many rows)."""
    return SQL(
        "SELECT e.* FROM unnest(%b::uuid[], %b::bigint[]) AS c(id, version) "
        "CROSS JOIN LATERAL (SELECT originator_id, originator_version, topic, state FROM {} "
        "WHERE originator_id = c.id AND originator_version > c.version "
        "ORDER BY originator_version) AS e"
    ).format(Identifier(events_table))


class UnitOfWork:
    """The aggregates one batch of commands loads and changes; saved together."""

    def __init__(self, app: "OpportunityApp", optimistic: bool = False) -> None:
        self._app = app
        self._optimistic = optimistic
        self._aggregates: dict[UUID, Aggregate] = {}

    def find(
        self, aggregate_id: UUID, kind: type[AggregateT], *, rarely_exists: bool = False
    ) -> AggregateT | None:
        """The aggregate, or None if it does not exist. With `rarely_exists`, an optimistic
        unit of work does not read the store for it: if it does exist after all, the save
        conflicts and the commands are run again, reading everything."""
        if aggregate_id not in self._aggregates:
            if rarely_exists and self._optimistic and not self._app.is_cached(aggregate_id):
                return None
            try:
                self._aggregates[aggregate_id] = (
                    cast(Aggregate, self._app.repository.get(aggregate_id))
                    if self._optimistic
                    else self._app.fresh(aggregate_id)
                )
            except AggregateNotFoundError:
                return None
        found = self._aggregates[aggregate_id]
        if not isinstance(found, kind):
            raise NotFound(f"{aggregate_id} is not a {kind.__name__}")
        return found

    def get(self, aggregate_id: UUID) -> Opportunity:
        found = self.find(aggregate_id, Opportunity)
        if found is None:
            raise NotFound(f"no opportunity {aggregate_id}", id=str(aggregate_id))
        return found

    def add(self, aggregate: Aggregate) -> None:
        self._aggregates[aggregate.id] = aggregate

    @property
    def aggregates(self) -> list[Aggregate]:
        return list(self._aggregates.values())

    def pending(self) -> int:
        return sum(len(a.pending_events) for a in self._aggregates.values())


Work = Callable[[UnitOfWork], T]


@dataclass
class Outcome(Generic[T]):
    value: T | None = None
    error: BaseException | None = None

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


@dataclass(frozen=True)
class Context:
    """Who gives a command, when it happened, and which version they saw."""

    principal: Principal
    now: datetime
    occurred_at: datetime | None = None
    if_match: int | None = None

    def at(self, opportunity: Opportunity | None = None) -> datetime:
        """The command's time: the imported one, else now (never before the last event)."""
        if self.occurred_at is not None:
            return self.occurred_at
        if opportunity is not None and opportunity.last_event_at > self.now:
            return opportunity.last_event_at
        return self.now


@dataclass(frozen=True)
class IdempotencyKey:
    principal_id: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Answered:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Taken:
    """What became of a qualified lead: created, taken before (a redelivery), or duplicate."""

    outcome: str
    opportunity_id: str


@dataclass(frozen=True)
class NewOpportunity:
    type: str
    customer: Customer
    owner_id: str | None
    team_id: str | None
    title: str | None = None
    amount: Decimal | None = None
    currency: str = "CNY"
    expected_close_on: date | None = None
    source: str | None = None
    lead_id: str | None = None
    renewal_of: str | None = None
    id: UUID = field(default_factory=uuid4)


class OpportunityApp(Application[UUID]):
    name = "Opportunities"
    snapshotting_intervals = {Opportunity: 25}  # noqa: RUF012 - eventsourcing reads a class attr

    def __init__(
        self, rules: Rulebook, env: dict[str, str] | None = None, zone: ZoneInfo = DEFAULT_ZONE
    ) -> None:
        super().__init__(env)
        self.rules = rules
        self.zone = zone
        self._catch_up_query = (
            newer_events_query(self.recorder.events_table_name)
            if isinstance(self.recorder, PostgresAggregateRecorder)
            else None
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    # -- running commands -------------------------------------------------------------------

    def run(self, work: Work[T]) -> T:
        outcome: Outcome[T] = self.run_batch([work])[0]
        return outcome.unwrap()

    def run_batch(
        self, works: list[Work[Any]], touches: Collection[UUID] = ()
    ) -> list[Outcome[Any]]:
        """Run commands together and save them in one transaction, trusting the aggregate
        cache (`touches`, the aggregates they change, brought up to date first). On a
        conflict, run them together again reading the store; then each alone."""
        self._catch_up_cached(touches)
        optimistic = self._run_together(works, optimistic=True)
        if optimistic is not None:
            # A refusal may come from a stale cached aggregate: confirm it on stored state.
            return [
                self._run_alone(work) if outcome.error is not None else outcome
                for work, outcome in zip(works, optimistic, strict=True)
            ]
        return self._run_together(works, optimistic=False) or [self._run_alone(w) for w in works]

    def _run_together(self, works: list[Work[Any]], optimistic: bool) -> list[Outcome[Any]] | None:
        """The outcomes, or None if the batch must be run again (nothing was saved). An
        optimistic run trusts the aggregate cache; when that was stale, the save conflicts."""
        uow = UnitOfWork(self, optimistic)
        outcomes: list[Outcome[Any]] = []
        for work in works:
            before = uow.pending()
            try:
                outcomes.append(Outcome(value=work(uow)))
            except Exception as exc:
                if unavailable(exc):  # nothing of the batch is saved; its callers hear why
                    raise
                if uow.pending() != before:  # it failed half-way: its changes cannot be undone
                    return None
                outcomes.append(Outcome(error=exc))
        if self._save(uow):
            return outcomes
        self._forget(uow)
        return None

    def _run_alone(self, work: Work[Any]) -> Outcome[Any]:
        uow = UnitOfWork(self)
        try:
            value = work(uow)
            saved = self._save(uow)
        except Exception as exc:
            return Outcome(error=exc)
        if not saved:
            return Outcome(error=Conflict("a concurrent command changed it first; retry"))
        return Outcome(value=value)

    def _save(self, uow: UnitOfWork) -> bool:
        """Save the unit of work in one transaction; False if another writer got there first."""
        try:
            self.save(*uow.aggregates)
        except RecordConflictError:
            return False
        return True

    def _forget(self, uow: UnitOfWork) -> None:
        """Drop what a conflicting unit of work read from the cache: it may be stale."""
        if self.repository.cache is not None:
            for aggregate in uow.aggregates:
                with contextlib.suppress(KeyError):
                    self.repository.cache.get(aggregate.id, evict=True)

    def fresh(self, aggregate_id: UUID) -> Aggregate:
        """The aggregate as stored now: the cached copy brought up to date (one query), so
        another copy of the service writing it is seen. Raises AggregateNotFoundError."""
        aggregate = cast(Aggregate, self.repository.get(aggregate_id))
        newer = list(self.events.get(aggregate_id, gt=aggregate.version))
        for event in newer:
            aggregate = cast(Any, event).mutate(aggregate)
        if newer and self.repository.cache is not None:
            self.repository.cache.put(aggregate_id, deepcopy(aggregate))
        return aggregate

    def _catch_up_cached(self, ids: Collection[UUID]) -> None:
        """Load the aggregates a batch changes into the cache, up to date, in one query: the
        events after each cached copy's version (another process — a second worker, another
        replica — may have recorded some), all events of one not cached. So a batch neither
        reads aggregate by aggregate nor conflicts on a stale copy and runs again.
        PostgreSQL only: a SQLite store has one writing process, and reads are cheap."""
        cache, query = self.repository.cache, self._catch_up_query
        if cache is None or not ids or query is None:
            return
        datastore = cast(PostgresAggregateRecorder, self.recorder).datastore
        known: dict[UUID, Aggregate | None] = {}
        for aggregate_id in ids:
            try:
                known[aggregate_id] = cast(Aggregate, cache.get(aggregate_id))
            except KeyError:
                known[aggregate_id] = None
        versions = [a.version if a is not None else 0 for a in known.values()]
        with datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(query, (list(known), versions), prepare=True)
            rows = cursor.fetchall()
        newer: dict[UUID, list[StoredEvent]] = {}
        for row in rows:
            newer.setdefault(row["originator_id"], []).append(
                StoredEvent(
                    row["originator_id"], row["originator_version"], row["topic"], row["state"]
                )
            )
        for aggregate_id, stored in newer.items():
            aggregate = deepcopy(known[aggregate_id])
            for event in map(self.mapper.to_domain_event, stored):
                aggregate = cast(Any, event).mutate(aggregate)
            cache.put(aggregate_id, aggregate)

    def is_cached(self, aggregate_id: UUID) -> bool:
        cache = self.repository.cache
        if cache is None:
            return False
        try:
            cache.get(aggregate_id)
        except KeyError:
            return False
        return True

    # -- commands (each runs inside a unit of work) -----------------------------------------

    def create(self, uow: UnitOfWork, new: NewOpportunity, ctx: Context) -> Opportunity:
        access.check_create(ctx.principal, new.owner_id, new.team_id)
        pipeline = self.rules.pipeline_for(new.type, new.customer.tier)
        index_id = ActiveOpportunityIndex.create_id(uscc=new.customer.uscc, type=new.type)
        index = uow.find(index_id, ActiveOpportunityIndex, rarely_exists=True)
        if index is not None and index.opportunity_id is not None:
            raise DuplicateOpportunity(new.customer.uscc, new.type, index.opportunity_id)
        opportunity = Opportunity(
            id=new.id,
            type=new.type,
            pipeline_id=pipeline.id,
            stage=pipeline.stage_ids[0],
            customer=new.customer.model_dump(mode="json"),
            owner_id=new.owner_id,
            team_id=new.team_id,
            title=new.title,
            amount=new.amount,
            currency=new.currency,
            expected_close_on=new.expected_close_on,
            source=new.source,
            lead_id=new.lead_id,
            renewal_of=new.renewal_of,
            at=ctx.at(),
            actor=ctx.principal.id,
        )
        if index is None:
            index = ActiveOpportunityIndex(
                uscc=new.customer.uscc, type=new.type, opportunity_id=str(new.id)
            )
        else:
            index.take(str(new.id))
        uow.add(opportunity)
        uow.add(index)
        return opportunity

    def act(
        self,
        uow: UnitOfWork,
        opportunity_id: UUID,
        command: str,
        ctx: Context,
        change: Callable[[Opportunity, datetime], None],
    ) -> Opportunity:
        """Load, check access and `If-Match`, apply `change`, keep the active index true."""
        opportunity = uow.get(opportunity_id)
        access.check_act(ctx.principal, command, opportunity.owner_id, opportunity.team_id)
        if ctx.if_match is not None and ctx.if_match != opportunity.version:
            raise VersionMismatch(
                f"If-Match names version {ctx.if_match}; the opportunity is at "
                f"version {opportunity.version}",
                expected=ctx.if_match,
                current=opportunity.version,
            )
        was_active = opportunity.is_active
        change(opportunity, ctx.at(opportunity))
        if was_active and not opportunity.is_active:
            self._release(uow, opportunity)
            if opportunity.status == Status.WON:
                self._record_contract(uow, opportunity)
        return opportunity

    def _record_contract(self, uow: UnitOfWork, opportunity: Opportunity) -> None:
        uscc = opportunity.customer["uscc"]
        account = uow.find(CustomerAccount.create_id(uscc), CustomerAccount)
        if account is None:
            account = CustomerAccount(uscc=uscc)
            uow.add(account)
        account.record_contract(str(opportunity.id), opportunity.contract_end_on)

    def _release(self, uow: UnitOfWork, opportunity: Opportunity) -> None:
        index_id = ActiveOpportunityIndex.create_id(
            uscc=opportunity.customer["uscc"], type=opportunity.type
        )
        index = uow.find(index_id, ActiveOpportunityIndex)
        if index is not None:
            index.release(str(opportunity.id))

    # -- commands from other systems (Kafka) -------------------------------------------------

    def take_lead(self, uow: UnitOfWork, lead: QualifiedLead, ctx: Context) -> Taken:
        """Create the lead's opportunity once, whatever the redeliveries: its id comes from
        the lead id. `new`, or `resale` when the customer has a running won contract."""
        opportunity_id = Opportunity.new_id("lead", lead.lead_id)
        if uow.find(opportunity_id, Opportunity, rarely_exists=True) is not None:
            return Taken("taken_before", str(opportunity_id))
        at = ctx.at()
        account = uow.find(CustomerAccount.create_id(lead.customer.uscc), CustomerAccount)
        running = account is not None and account.has_running_contract(
            at.astimezone(self.zone).date()
        )
        resale = running and self.rules.intake.resale_when_contract_running
        new = NewOpportunity(
            id=opportunity_id,
            type=OpportunityType.RESALE if resale else OpportunityType.NEW,
            customer=lead.customer,
            owner_id=lead.owner_id,
            team_id=lead.team_id,
            amount=lead.expected_amount,
            currency=lead.currency or "CNY",
            source=lead.source or "lead",
            lead_id=lead.lead_id,
        )
        try:
            self.create(uow, new, ctx)
        except DuplicateOpportunity as duplicate:
            return Taken("duplicate", duplicate.existing_id)
        return Taken("created", str(opportunity_id))

    def reclaim_unless_progressed(
        self, uow: UnitOfWork, command: ReclaimCommand, ctx: Context
    ) -> str:
        """Reclaim only if nothing progressed since the version the reminder was based on."""
        opportunity = uow.find(UUID(command.opportunity_id), Opportunity)
        if opportunity is None:
            return "unknown_opportunity"
        if opportunity.last_progress_version > command.based_on_version:
            return "progressed"
        if opportunity.status != Status.OPEN:
            # Rules never reclaim a deferred opportunity; a reclaim computed while it was open
            # that arrives after a deferral is stale too (only people reclaim deferred ones).
            return f"not_reclaimable_while_{opportunity.status}"
        self.act(
            uow,
            opportunity.id,
            "reclaim",
            ctx,
            lambda o, at: o.reclaim(
                command.reason, command.rule_id, command.command_id, at, ctx.principal.id
            ),
        )
        return "reclaimed"

    def create_renewal(self, uow: UnitOfWork, command: CreateRenewalCommand, ctx: Context) -> str:
        """The renewal of a won opportunity, created once: its id comes from the won one's."""
        won = uow.find(UUID(command.opportunity_id), Opportunity)
        if won is None:
            return "unknown_opportunity"
        if won.status != Status.WON:
            return f"not_won_but_{won.status}"
        renewal_id = Opportunity.new_id("renewal", str(won.id))
        if uow.find(renewal_id, Opportunity) is not None:
            return "created_before"
        new = NewOpportunity(
            id=renewal_id,
            type=OpportunityType.RENEWAL,
            customer=Customer.model_validate(won.customer),
            owner_id=won.owner_id,
            team_id=won.team_id,
            title=f"Renewal of {won.contract_ref}" if won.contract_ref else None,
            amount=won.amount,
            currency=won.currency,
            expected_close_on=won.contract_end_on,
            source="renewal",
            renewal_of=str(won.id),
        )
        try:
            self.create(uow, new, ctx)
        except DuplicateOpportunity:
            return "renewal_active_already"
        return "created"

    def answer_once(
        self,
        uow: UnitOfWork,
        key: IdempotencyKey,
        status_code: int,
        answer: Callable[[], dict[str, Any]],
    ) -> Answered:
        """The first answer under an Idempotency-Key, or `answer()` remembered with the events
        of this unit of work (a repeat in the same batch finds it there)."""
        answer_id = IdempotentAnswer.create_id(key.principal_id, key.key)
        earlier = uow.find(answer_id, IdempotentAnswer)
        if earlier is not None:
            if earlier.fingerprint != key.fingerprint:
                raise InvalidValue(
                    "Idempotency-Key",
                    "this Idempotency-Key was used for another request",
                    location="header",
                )
            return Answered(earlier.status_code, earlier.body, replayed=True)
        body = answer()
        uow.add(
            IdempotentAnswer(
                principal_id=key.principal_id,
                key=key.key,
                fingerprint=key.fingerprint,
                status_code=status_code,
                body=body,
            )
        )
        return Answered(status_code, body)

    # -- queries ----------------------------------------------------------------------------

    def opportunity(self, opportunity_id: UUID) -> Opportunity:
        return UnitOfWork(self).get(opportunity_id)

    def history(self, opportunity_id: UUID) -> list[StoredEvent]:
        """The opportunity's recorded events, oldest first."""
        self.opportunity(opportunity_id)
        return list(self.recorder.select_events(opportunity_id))

    def opportunity_notifications(self, after: int, limit: int) -> Sequence[Notification]:
        """Recorded Opportunity events after position `after`, in recording order."""
        return self.recorder.select_notifications(
            start=after, limit=limit, topics=OPPORTUNITY_TOPICS, inclusive_of_start=False
        )

    def last_position(self) -> int:
        return self.recorder.max_notification_id() or 0
