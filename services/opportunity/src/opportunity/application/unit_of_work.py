"""Units of work: the aggregates one batch of commands loads and changes, and how a batch runs
and is saved in one transaction (group commit's side in the application).

Many concurrent commands are executed together and saved in one transaction; when that
transaction conflicts, each is retried on its own so every caller gets its own answer.
"""

import contextlib
from collections.abc import Callable, Collection, Sequence
from copy import deepcopy
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, Protocol, TypeVar, cast, runtime_checkable
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    JSONTranscoder,
    RecordConflictError,
    StoredEvent,
    Transcoding,
)
from eventsourcing.utils import EnvType

from chassis.auth import Principal
from chassis.sql.errors import unavailable
from opportunity.domain.errors import DomainError
from opportunity.domain.opportunity import Opportunity

T = TypeVar("T")
AggregateT = TypeVar("AggregateT", bound=Aggregate)


class NotFound(DomainError):
    code = "not_found"


class VersionMismatch(DomainError):
    """`If-Match` named another version than the current one."""

    code = "version_mismatch"


class Conflict(DomainError):
    """A concurrent command changed the same aggregates first."""

    code = "concurrent_change"


class DateAsISO(Transcoding):
    """Dates in stored events as ISO 8601 text."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


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


class UnitOfWork:
    """The aggregates one batch of commands loads and changes; saved together."""

    def __init__(self, app: "BatchingApplication", optimistic: bool = False) -> None:
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


@runtime_checkable
class ReadsNewerEvents(Protocol):
    def select_newer_events(
        self, ids: Sequence[UUID], versions: Sequence[int]
    ) -> dict[UUID, list[StoredEvent]]: ...


class BatchingApplication(Application[UUID]):
    """An event-sourced application whose commands run in units of work, many per
    transaction."""

    def __init__(self, env: EnvType | None = None) -> None:
        super().__init__(env)
        # A PostgreSQL store reads what a batch's cached aggregates missed in one query
        # (adapters.pgrecorder); SQLite has one writing process and cheap reads.
        recorder = self.recorder
        self._newer_events = (
            recorder.select_newer_events if isinstance(recorder, ReadsNewerEvents) else None
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

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
        reads aggregate by aggregate nor conflicts on a stale copy and runs again."""
        cache, newer_events = self.repository.cache, self._newer_events
        if cache is None or not ids or newer_events is None:
            return
        known: dict[UUID, Aggregate | None] = {}
        for aggregate_id in ids:
            try:
                known[aggregate_id] = cast(Aggregate, cache.get(aggregate_id))
            except KeyError:
                known[aggregate_id] = None
        versions = [a.version if a is not None else 0 for a in known.values()]
        for aggregate_id, stored in newer_events(list(known), versions).items():
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
