"""The pure projection step: one event applied to an opportunity's read-model state.

It gives the new state, the stage visits it opened or closed, and its history row; no I/O.

Order is the caller's business (ordering.py applies versions 1, 2, 3… and holds the rest);
`apply` trusts that `event.version == state.version + 1`.
"""

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from contracts.customer import Customer
from contracts.envelope import Envelope
from contracts.opportunity import (
    PAYLOADS,
    PROGRESS_EVENTS,
    OpportunityAssignedV1,
    OpportunityCreatedV1,
    OpportunityDeferredV1,
    OpportunityLostV1,
    OpportunityPausedV1,
    OpportunityVoidedV1,
    OpportunityWonV1,
    Payload,
    StageAdvancedV1,
    StageRevertedV1,
)
from contracts.rules import DEFAULT_DEFERRAL_REASONS, ForecastCategory
from contracts.workdays import working_days_between
from projections.domain.deferrals import ENDS, Ended, Started, coded
from projections.domain.stage_index import PipelineIndex
from projections.domain.state import (
    DEFERRED,
    LOST,
    OPEN,
    PAUSED,
    POOLED,
    VOIDED,
    WON,
    OpportunityState,
    history_values,
)
from projections.domain.visits import (
    EntryKind,
    ExitKind,
    seconds_between,
    visit_row,
)

log = logging.getLogger(__name__)


class RecordedCustomer(Customer):
    """The customer as recorded: the opportunity service checked the USCC at intake."""

    uscc: str


class _RecordedCreation(OpportunityCreatedV1):
    customer: RecordedCustomer


# The payload models the projection reads: the contract's, except the creation's customer.
_MODELS: dict[str, type[Payload]] = {**PAYLOADS, "OpportunityCreated": _RecordedCreation}
# Known events whose payload no figure reads: not validated again (the service made them).
_PAYLOAD_UNREAD = frozenset(
    {
        "FollowUpLogged",
        "KeyPersonAdded",
        "CompetitorRecorded",
        "DocumentAttached",
        "OpportunityResumed",
        "OpportunityReactivated",
        "OpportunityReclaimed",
    }
)
_UNREAD = Payload()
_DEFAULT_REASON_CODES = tuple(reason.id for reason in DEFAULT_DEFERRAL_REASONS)


@dataclass
class Applied:
    state: OpportunityState
    visits: list[dict[str, Any]] = field(default_factory=list)
    # The `bi_opportunity_version` row: opportunity_id, version, occurred_at, event_type,
    # then HISTORY_FIELDS.
    history: tuple[Any, ...] = ()
    projected: bool = True
    # The deferral episode the event started or ended (`bi_deferral`).
    deferral_started: Started | None = None
    deferral_ended: Ended | None = None


class Projector:
    """Applies events to states; the rules give stage positions and the deferral reasons'
    codes, the zone the creation month."""

    def __init__(
        self,
        pipelines: PipelineIndex,
        zone: ZoneInfo,
        deferral_reasons: Collection[str] = _DEFAULT_REASON_CODES,
    ) -> None:
        self.pipelines, self.zone = pipelines, zone
        self.deferral_reasons = frozenset(deferral_reasons)

    def apply(self, state: OpportunityState | None, event: Envelope) -> Applied | None:
        """The state after `event`; None when it cannot start an opportunity (not a creation).

        An unknown event type, or a payload the contract refuses, only moves the version on
        (`projected` is False): it changes no figure, and the events after it still apply.
        """
        kind = event.event_type
        model = _MODELS.get(kind)
        payload: Payload | None = None
        if kind in _PAYLOAD_UNREAD:
            payload = _UNREAD
        elif model is not None:
            try:
                payload = model.model_validate(event.payload)
            except ValidationError as exc:
                log.warning(
                    "event %s (%s v%d of %s) has a payload the contract refuses: %s",
                    event.event_id,
                    kind,
                    event.version,
                    event.opportunity_id,
                    exc.errors()[0]["msg"],
                )
        if state is None:
            if not isinstance(payload, OpportunityCreatedV1):
                return None
            state = self._created(event, payload)
            applied = Applied(state)
            applied.visits.append(visit_row(state.visit_of, state.open_visit, self.zone))
        else:
            applied = Applied(state, projected=payload is not None)
            if payload is not None:
                was_deferred = state.status == DEFERRED
                self._change(applied, event, payload)
                if was_deferred and state.status != DEFERRED and kind in ENDS:
                    applied.deferral_ended = Ended(
                        state.id, event.occurred_at, event.version, ENDS[kind].value
                    )
            state.version = event.version
            state.last_event_at = event.occurred_at
            if kind in PROGRESS_EVENTS and payload is not None:
                state.last_progress_at = event.occurred_at
        applied.history = (
            state.id,
            event.version,
            event.occurred_at,
            kind,
            *history_values(state),
        )
        return applied

    # -- one method per event type that changes a figure ----------------------------------

    def _created(self, e: Envelope, p: OpportunityCreatedV1) -> OpportunityState:
        at = e.occurred_at
        index = self.pipelines.index(p.pipeline_id, p.stage)
        return OpportunityState(
            id=e.opportunity_id,
            version=e.version,
            type=p.type.value,
            pipeline_id=p.pipeline_id,
            stage=p.stage,
            stage_index=index,
            status=POOLED if p.owner_id is None else OPEN,
            uscc=p.customer.uscc,
            customer_name=p.customer.name,
            tier=p.customer.tier.value,
            ownership=p.customer.ownership.value,
            industry=p.customer.industry,
            region=p.customer.region,
            owner_id=p.owner_id,
            team_id=p.team_id,
            title=p.title,
            amount=p.amount,
            currency=p.currency,
            expected_close_on=p.expected_close_on,
            source=p.source,
            lead_id=p.lead_id,
            renewal_of=p.renewal_of,
            created_at=at,
            created_month=at.astimezone(self.zone).strftime("%Y-%m"),
            created_by=e.actor,
            stage_entered_at=at,
            stage_entered_version=e.version,
            stage_entry_kind=EntryKind.CREATED.value,
            visit_no=1,
            visit_paused_seconds=0.0,
            visit_deferred_seconds=0.0,
            visit_paused_working_days=0.0,
            paused_at=None,
            paused_until=None,
            deferred_at=None,
            revisit_on=None,
            furthest_stage=p.stage,
            furthest_stage_index=-1 if index is None else index,
            last_progress_at=at,
            last_event_at=at,
            follow_up_count=0,
            classified_by=p.customer.classified_by,
        )

    def _change(self, applied: Applied, e: Envelope, p: Payload) -> None:  # noqa: C901 - a table
        s, at = applied.state, e.occurred_at
        if isinstance(p, StageAdvancedV1):
            self._move(applied, e, p.to_stage, ExitKind.ADVANCED, EntryKind.ADVANCED)
        elif isinstance(p, StageRevertedV1):
            self._move(applied, e, p.to_stage, ExitKind.REVERTED, EntryKind.REVERTED)
        elif e.event_type == "FollowUpLogged":
            s.follow_up_count += 1
        elif e.event_type == "InfoUpdated":
            _update_info(s, e.payload.get("changes") or {})
        elif isinstance(p, OpportunityPausedV1):
            s.status, s.paused_at, s.paused_until = PAUSED, at, p.until
        elif e.event_type == "OpportunityResumed":
            self._end_pause(s, at)
            s.status = OPEN
            applied.visits.append(visit_row(s.visit_of, s.open_visit, self.zone))
        elif isinstance(p, OpportunityDeferredV1):
            self._end_pause(s, at)
            s.status, s.deferred_at, s.revisit_on = DEFERRED, at, p.revisit_on
            s.deferred_reason, s.deferred_note = coded(p.reason, p.note, self.deferral_reasons)
            applied.deferral_started = Started(
                s.id, e.version, at, s.deferred_reason, s.deferred_note, p.revisit_on
            )
            applied.visits.append(visit_row(s.visit_of, s.open_visit, self.zone))
        elif e.event_type == "OpportunityReactivated":
            _end_deferral(s, at)
            s.status = OPEN
            applied.visits.append(visit_row(s.visit_of, s.open_visit, self.zone))
        elif e.event_type == "OpportunityReclaimed":
            _end_deferral(s, at)
            s.status, s.owner_id = POOLED, None
            applied.visits.append(visit_row(s.visit_of, s.open_visit, self.zone))
        elif isinstance(p, OpportunityAssignedV1):
            s.owner_id = p.owner_id
            if p.team_id is not None:
                s.team_id = p.team_id
            if s.status == POOLED:
                s.status = OPEN
        elif isinstance(p, OpportunityWonV1):
            self._close(applied, e, ExitKind.WON, WON)
            s.amount = s.won_amount = p.amount
            s.currency = p.currency
            s.contract_ref = p.contract_ref
            s.contract_start_on, s.contract_end_on = p.contract_start_on, p.contract_end_on
        elif isinstance(p, OpportunityLostV1):
            self._close(applied, e, ExitKind.LOST, LOST)
            s.lost_reason, s.lost_competitor = p.reason, p.competitor
        elif isinstance(p, OpportunityVoidedV1):
            self._close(applied, e, ExitKind.VOIDED, VOIDED)
            s.void_reason = p.reason

    def _move(
        self, applied: Applied, e: Envelope, to_stage: str, exit_kind: ExitKind, entry: EntryKind
    ) -> None:
        """Leave the current visit and start a visit of `to_stage`."""
        s = applied.state
        applied.visits.append(
            visit_row(
                s.visit_of, s.open_visit, self.zone, e.occurred_at, e.version, exit_kind, to_stage
            )
        )
        index = self.pipelines.index(s.pipeline_id, to_stage)
        s.stage, s.stage_index = to_stage, index
        s.stage_entered_at, s.stage_entered_version = e.occurred_at, e.version
        s.stage_entry_kind = entry.value
        s.visit_no += 1
        s.visit_paused_seconds = s.visit_deferred_seconds = s.visit_paused_working_days = 0.0
        if index is not None and index > s.furthest_stage_index:
            s.furthest_stage, s.furthest_stage_index = to_stage, index
        applied.visits.append(visit_row(s.visit_of, s.open_visit, self.zone))

    def _close(self, applied: Applied, e: Envelope, exit_kind: ExitKind, status: str) -> None:
        """Won, lost or voided: a pause or deferral ends with it, and so does the visit."""
        s, at = applied.state, e.occurred_at
        self._end_pause(s, at)
        _end_deferral(s, at)
        applied.visits.append(
            visit_row(s.visit_of, s.open_visit, self.zone, at, e.version, exit_kind)
        )
        s.status, s.closed_at, s.closed_stage = status, at, s.stage
        s.revisit_on = s.paused_until = None

    def _end_pause(self, s: OpportunityState, at: datetime) -> None:
        if s.paused_at is not None and s.visit_paused_working_days is not None:
            s.visit_paused_working_days += working_days_between(s.paused_at, at, self.zone)
        s.visit_paused_seconds += seconds_between(s.paused_at, at)
        s.paused_at = s.paused_until = None


def _end_deferral(s: OpportunityState, at: datetime) -> None:
    s.visit_deferred_seconds += seconds_between(s.deferred_at, at)
    s.deferred_at = s.revisit_on = s.deferred_reason = s.deferred_note = None


_CATEGORIES = frozenset(c.value for c in ForecastCategory)


def _update_info(s: OpportunityState, changes: dict[str, Any]) -> None:
    for name, text in changes.items():
        try:
            if name == "amount":
                s.amount = None if text is None else Decimal(text)
            elif name == "expected_close_on":
                s.expected_close_on = date.fromisoformat(text) if text else None
            elif name == "customer_name" and text is not None:
                s.customer_name = text
            elif name == "industry":
                s.industry = text
            elif name == "region":
                s.region = text
            elif name == "title":
                s.title = text
            elif name == "currency" and text is not None:
                s.currency = text
            elif name == "forecast_category":
                if text is not None and text not in _CATEGORIES:
                    raise ValueError(text)
                s.forecast_category_override = text
        except (InvalidOperation, ValueError, TypeError):
            log.warning("InfoUpdated of %s: %s is not readable; kept the one before", s.id, name)
