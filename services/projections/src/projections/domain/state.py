"""An opportunity as the read model holds it: its `bi_opportunity` state, the statuses it
passes through, and the fields `bi_opportunity_version` keeps after each event."""

from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from operator import attrgetter

from contracts.opportunity import ACTIVE_STATUSES, Status
from projections.domain.visits import OpenVisit, VisitOf

# The contract's statuses as plain text, the way the rows hold them.
OPEN, PAUSED, DEFERRED, POOLED = (
    s.value for s in (Status.OPEN, Status.PAUSED, Status.DEFERRED, Status.POOLED)
)
WON, LOST, VOIDED = (s.value for s in (Status.WON, Status.LOST, Status.VOIDED))
ACTIVE = frozenset(s.value for s in ACTIVE_STATUSES)


@dataclass(slots=True)
class OpportunityState:
    """One `bi_opportunity` row: field names are its column names."""

    id: str
    version: int
    type: str
    pipeline_id: str
    stage: str
    stage_index: int | None
    status: str
    uscc: str
    customer_name: str
    tier: str
    ownership: str
    industry: str | None
    region: str | None
    owner_id: str | None
    team_id: str | None
    title: str | None
    amount: Decimal | None
    currency: str
    expected_close_on: date | None
    source: str | None
    lead_id: str | None
    renewal_of: str | None
    created_at: datetime
    created_month: str
    created_by: str
    stage_entered_at: datetime
    stage_entered_version: int
    stage_entry_kind: str
    visit_no: int
    visit_paused_seconds: float
    visit_deferred_seconds: float
    visit_paused_working_days: float | None  # None: not known (see visits.py)
    paused_at: datetime | None
    paused_until: date | None
    deferred_at: datetime | None
    revisit_on: date | None
    furthest_stage: str
    furthest_stage_index: int
    last_progress_at: datetime
    last_event_at: datetime
    follow_up_count: int
    closed_at: datetime | None = None
    closed_stage: str | None = None
    won_amount: Decimal | None = None
    contract_ref: str | None = None
    contract_start_on: date | None = None
    contract_end_on: date | None = None
    lost_reason: str | None = None
    lost_competitor: str | None = None
    void_reason: str | None = None
    awaiting_version: int | None = None
    # The classification rule that gave the tier, or `manual`; None before classification.
    classified_by: str | None = None
    # A manager's forecast category (pipeline, best_case, commit) over the stage's; None: the
    # stage's. The deferral's coded reason and note while deferred (domain/deferrals.py).
    forecast_category_override: str | None = None
    deferred_reason: str | None = None
    deferred_note: str | None = None

    @property
    def visit_of(self) -> VisitOf:
        return VisitOf(
            self.id, self.pipeline_id, self.type, self.tier, self.ownership, self.created_at
        )

    @property
    def open_visit(self) -> OpenVisit:
        return OpenVisit(
            visit_no=self.visit_no,
            stage=self.stage,
            stage_index=self.stage_index,
            entered_at=self.stage_entered_at,
            entered_version=self.stage_entered_version,
            entry_kind=self.stage_entry_kind,
            paused_seconds=self.visit_paused_seconds,
            deferred_seconds=self.visit_deferred_seconds,
            paused_working_days=self.visit_paused_working_days,
        )


STATE_FIELDS = tuple(f.name for f in fields(OpportunityState))
state_values = attrgetter(*STATE_FIELDS)

# The columns of `bi_opportunity_version`: the state after each event, for `as_of`. They are
# all the reports read of a state that changes, now or as of then (adapters/readmodel.py).
HISTORY_FIELDS = (
    "status",
    "stage",
    "stage_index",
    "furthest_stage_index",
    "stage_entered_at",
    "visit_paused_seconds",
    "paused_at",
    "owner_id",
    "team_id",
    "amount",
    "currency",
    "expected_close_on",
    "last_progress_at",
    "closed_at",
    "won_amount",
    "forecast_category_override",
)
history_values = attrgetter(*HISTORY_FIELDS)
