"""What the reports read (a port: projections.adapters.readmodel answers it from SQL): which
opportunities a report covers, and the small grouped answers the pure metric functions finish."""

from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from projections.domain.attainment import Credit, OpenOwned
from projections.domain.deferrals import Episode
from projections.domain.forecast import OpenAmount
from projections.domain.funnel import ReachCount
from projections.domain.plans import CompetitionRow, TargetChange


@dataclass(frozen=True)
class Query:
    """Which opportunities a report covers (SPEC §4.2 filters) and whose they may be."""

    type: str | None = None
    tier: str | None = None
    ownership: str | None = None
    # The classification rule that gave the tier, or `manual` (SPEC §8.2).
    classified_by: str | None = None
    owner_id: str | None = None
    team_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    as_of: datetime | None = None
    include_voided: bool = False
    # The principal's reach (SPEC §4.4): a rep's own, a manager's team.
    scope_owner_id: str | None = None
    scope_team_id: str | None = None

    def segment(self) -> "Query":
        """The same customer segment at the same `as_of`, company-wide, created at any time."""
        return replace(
            self,
            owner_id=None,
            team_id=None,
            scope_owner_id=None,
            scope_team_id=None,
            created_from=None,
            created_to=None,
        )

    def company(self, created_from: datetime, created_to: datetime) -> "Query":
        """The same customer segment, company-wide, created in [created_from, created_to)."""
        return replace(self.segment(), created_from=created_from, created_to=created_to)


@dataclass(frozen=True)
class CompletedVisits:
    pipeline_id: str
    stage: str
    tier: str
    ownership: str
    exit_kind: str
    count: int
    dwell_seconds: float
    paused_seconds: float
    # Of these, the visits whose working days are known (see domain/visits.py), and theirs.
    counted_in_working_days: int = 0
    working_days: float = 0.0


@dataclass(frozen=True)
class OpenStage:
    pipeline_id: str
    stage: str
    currency: str
    count: int
    age_seconds: float
    amount: Decimal


@dataclass(frozen=True)
class Cohort:
    """Everything the stage figures of one cohort need."""

    reach: list[ReachCount]
    visits: list[CompletedVisits]
    open: list[OpenStage]
    include_voided: bool = False


class Win(NamedTuple):
    owner_id: str | None
    team_id: str | None
    currency: str
    amount: Decimal | None
    won_at: datetime  # a won opportunity is closed


class WonMonth(NamedTuple):
    """The wins of one month (in the business time zone) and currency."""

    month: str
    currency: str
    wins: int
    amount: Decimal


@dataclass(frozen=True)
class Events:
    """Which events a figure counts: these types, occurred in [start, end) and by `as_of`, of
    opportunities of these types and tiers (empty: any) not voided by `as_of`."""

    types: tuple[str, ...]
    start: datetime
    end: datetime
    as_of: datetime
    opportunity_types: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()


class Reading(Protocol):
    """One consistent read of the read model, for one report."""

    def cohorts(
        self, q: Query, company: Query, at: datetime, *, visits: bool = True
    ) -> tuple[Cohort, Cohort]:
        """The stage figures of the query's cohort and of the company's trailing cohort."""

    def open_amounts(self, q: Query) -> list[OpenAmount]: ...

    def stale(self, q: Query, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        """Open opportunities, the longest idle first: how many, and the page."""

    def wins(self, q: Query) -> list[Win]: ...

    def won_by_month(self, q: Query) -> list[WonMonth]: ...

    def credits(self, events: Events) -> list[Credit]: ...

    def open_owned(
        self, as_of: datetime | None, close_from: date, close_to: date
    ) -> list[OpenOwned]:
        """Every active opportunity at `as_of` expected to close in [close_from, close_to)."""

    def target_changes(self, period: str, as_of: datetime) -> list[TargetChange]: ...

    def competition(self, competition_id: str) -> CompetitionRow | None: ...

    def competitions(self) -> list[CompetitionRow]:
        """Every competition, the newest defined first."""

    def deferrals(self, q: Query, start: datetime | None, end: datetime | None) -> list[Episode]:
        """Deferral episodes begun in [start, end) and by `q.as_of`, of the query's
        opportunities (their state then)."""


class ReadModel(Protocol):
    def reading(self) -> AbstractContextManager[Reading]: ...
