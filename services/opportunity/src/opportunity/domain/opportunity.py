"""The Opportunity aggregate: one sales opportunity, from creation to won, lost or voided.

Public methods validate, then call a private event method; event bodies only assign, because
they re-run on every replay. Time and actor are passed in, never read here.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from contracts.opportunity import Status
from contracts.rules import Pipeline, Rulebook
from opportunity.domain import pipeline_rules
from opportunity.domain.errors import InvalidValue
from opportunity.domain.ids import ID_NAMESPACE
from opportunity.domain.lifecycle import (
    check_allowed,
    check_changes,
    check_follow_up_kind,
    required,
    updated_values,
)


class Opportunity(Aggregate):
    """One sales opportunity, from creation to won, lost or voided."""

    # The reclaim commands (by id) taken; a class default for snapshots older than it.
    reclaimed_by: tuple[str, ...] = ()
    # Each owner it was reclaimed from, and when last (SPEC §8.3); a class default likewise.
    reclaimed_from: tuple[tuple[str, datetime], ...] = ()
    # A deferral's note, a manager's forecast category (SPEC §9): class defaults likewise.
    deferred_note: str | None = None
    forecast_category_override: str | None = None

    @event("OpportunityCreated")
    def __init__(  # noqa: PLR0913 - the whole initial state travels in the first event
        self,
        id: UUID,  # noqa: A002 - eventsourcing takes the aggregate id from this name
        type: str,  # noqa: A002
        pipeline_id: str,
        stage: str,
        customer: dict[str, Any],
        owner_id: str | None,
        team_id: str | None,
        title: str | None,
        amount: Decimal | None,
        currency: str,
        expected_close_on: date | None,
        source: str | None,
        lead_id: str | None,
        renewal_of: str | None,
        at: datetime,
        actor: str,
    ) -> None:
        self.type = type
        self.pipeline_id = pipeline_id
        self.stage = stage
        self.customer = dict(customer)
        self.owner_id = owner_id
        self.team_id = team_id
        self.title = title
        self.amount = amount
        self.currency = currency
        self.expected_close_on = expected_close_on
        self.source = source
        self.lead_id = lead_id
        self.renewal_of = renewal_of
        self.status = Status.POOLED if owner_id is None else Status.OPEN
        self.created_at = at
        self.created_by = actor
        self.stage_entered_at = at
        self.last_progress_at = at
        self.last_progress_version = 1
        self.last_event_at = at
        self.paused_at: datetime | None = None
        self.paused_until: date | None = None
        self.pause_reason: str | None = None
        self.deferred_reason: str | None = None
        self.revisit_on: date | None = None
        self.closed_at: datetime | None = None
        self.close_reason: str | None = None
        self.lost_competitor: str | None = None
        self.contract_ref: str | None = None
        self.contract_start_on: date | None = None
        self.contract_end_on: date | None = None
        self.follow_up_count = 0
        self.last_follow_up_at: datetime | None = None
        self.key_persons: list[dict[str, Any]] = []
        self.competitors: list[dict[str, Any]] = []
        self.documents: list[dict[str, Any]] = []

    @staticmethod
    def new_id(*parts: str) -> UUID:
        """A deterministic id, e.g. from a lead id, so a redelivery cannot create twice."""
        return uuid5(ID_NAMESPACE, "/".join(("opportunity", *parts)))

    def advance(
        self, pipeline: Pipeline, to_stage: str, role: str, at: datetime, actor: str
    ) -> None:
        self._require("advance", at)
        skipped = pipeline_rules.stages_skipped(pipeline, self.stage, to_stage, role)
        self._stage_advanced(
            from_stage=self.stage, to_stage=to_stage, skipped=skipped, at=at, actor=actor
        )

    def revert(
        self, pipeline: Pipeline, to_stage: str, reason: str, role: str, at: datetime, actor: str
    ) -> None:
        self._require("revert", at)
        required("reason", reason)
        pipeline_rules.check_revert(pipeline, self.stage, to_stage, role)
        self._stage_reverted(
            from_stage=self.stage, to_stage=to_stage, reason=reason, at=at, actor=actor
        )

    def log_follow_up(self, kind: str, note: str, at: datetime, actor: str) -> None:
        self._require("log_follow_up", at)
        check_follow_up_kind(kind)
        self._follow_up_logged(kind=kind, note=note, at=at, actor=actor)

    def update_info(self, changes: dict[str, str | None], at: datetime, actor: str) -> None:
        self._require("update_info", at)
        check_changes(changes)
        if changes:
            self._info_updated(changes=changes, at=at, actor=actor)

    def add_key_person(self, person: dict[str, Any], at: datetime, actor: str) -> None:
        self._require("add_key_person", at)
        self._key_person_added(person=person, at=at, actor=actor)

    def record_competitor(self, competitor: dict[str, Any], at: datetime, actor: str) -> None:
        self._require("record_competitor", at)
        self._competitor_recorded(competitor=competitor, at=at, actor=actor)

    def attach_document(self, document: dict[str, Any], at: datetime, actor: str) -> None:
        self._require("attach_document", at)
        self._document_attached(document=document, at=at, actor=actor)

    def pause(self, reason: str, until: date | None, at: datetime, actor: str) -> None:
        self._require("pause", at)
        required("reason", reason)
        if until is not None and until <= at.date():
            raise InvalidValue("until", "a pause ends after the day it starts")
        self._paused(reason=reason, until=until, at=at, actor=actor)

    def resume(self, at: datetime, actor: str) -> None:
        self._require("resume", at)
        self._resumed(paused_seconds=self._seconds_paused(at), at=at, actor=actor)

    def defer(
        self, reason: str, revisit_on: date, at: datetime, actor: str, note: str | None = None
    ) -> None:
        self._require("defer", at)
        required("reason", reason)
        if revisit_on <= at.date():
            raise InvalidValue("revisit_on", "a deferred opportunity is revisited in the future")
        paused_seconds = self._seconds_paused(at)
        self._deferred(reason, revisit_on, paused_seconds, at, actor, note)

    def reactivate(self, at: datetime, actor: str) -> None:
        self._require("reactivate", at)
        self._reactivated(at=at, actor=actor)

    def reclaim(
        self, reason: str, rule_id: str | None, command_id: str | None, at: datetime, actor: str
    ) -> None:
        self._require("reclaim", at)
        required("reason", reason)
        previous_status = str(self.status)
        self._reclaimed(reason, self.owner_id, previous_status, rule_id, command_id, at, actor)

    def assign(  # noqa: PLR0913 - a pool rule's assignment names the rule
        self,
        owner_id: str,
        at: datetime,
        actor: str,
        team_id: str | None = None,
        override: bool = False,
        rule_id: str | None = None,
    ) -> None:
        """Give the opportunity to `owner_id`; with `team_id`, it moves to that team too;
        `override`: over the pool's max_held; `rule_id`: the pool rule that redistributed it."""
        self._require("assign", at)
        self._assigned(
            owner_id=owner_id,
            previous_owner_id=self.owner_id,
            team_id=team_id or self.team_id,
            claimed=False,
            at=at,
            actor=actor,
            override=override,
            rule_id=rule_id,
        )

    def claim(self, owner_id: str, at: datetime, actor: str) -> None:
        self._require("claim", at)
        self._assigned(owner_id, self.owner_id, self.team_id, claimed=True, at=at, actor=actor)

    def win(
        self,
        pipeline: Pipeline,
        amount: Decimal,
        contract_ref: str,
        contract_start_on: date | None,
        contract_end_on: date | None,
        at: datetime,
        actor: str,
    ) -> None:
        self._require("win", at)
        pipeline_rules.check_win(pipeline, self.stage)
        if contract_start_on and contract_end_on and contract_end_on <= contract_start_on:
            raise InvalidValue("contract_end_on", "a contract ends after it starts")
        self._won(
            stage=self.stage,
            amount=amount,
            currency=self.currency,
            contract_ref=contract_ref,
            contract_start_on=contract_start_on,
            contract_end_on=contract_end_on,
            at=at,
            actor=actor,
        )

    def lose(
        self, rules: Rulebook, reason: str, competitor: str | None, at: datetime, actor: str
    ) -> None:
        self._require("lose", at)
        if reason not in rules.lost_reason_ids:
            raise InvalidValue(
                "reason",
                f"the reason is not a lost reason; use one of {list(rules.lost_reason_ids)}",
            )
        self._lost(stage=self.stage, reason=reason, competitor=competitor, at=at, actor=actor)

    def void(self, reason: str, at: datetime, actor: str) -> None:
        self._require("void", at)
        required("reason", reason)
        self._voided(reason=reason, previous_status=str(self.status), at=at, actor=actor)

    def _require(self, command: str, at: datetime) -> None:
        check_allowed(command, self.status, self.last_event_at, at)

    def _seconds_paused(self, at: datetime) -> float:
        return (at - self.paused_at).total_seconds() if self.paused_at else 0.0

    def _touch(self, at: datetime, progress: bool = False) -> None:
        self.last_event_at = at
        if progress:
            self.last_progress_at = at
            # Recorded before the version increments, hence + 1.
            self.last_progress_version = self.version + 1

    @event("StageAdvanced")
    def _stage_advanced(
        self, from_stage: str, to_stage: str, skipped: list[str], at: datetime, actor: str
    ) -> None:
        self.stage, self.stage_entered_at = to_stage, at
        self._touch(at, progress=True)

    @event("StageReverted")
    def _stage_reverted(
        self, from_stage: str, to_stage: str, reason: str, at: datetime, actor: str
    ) -> None:
        self.stage, self.stage_entered_at = to_stage, at
        self._touch(at, progress=True)

    @event("FollowUpLogged")
    def _follow_up_logged(self, kind: str, note: str, at: datetime, actor: str) -> None:
        self.follow_up_count += 1
        self.last_follow_up_at = at
        self._touch(at, progress=True)

    @event("InfoUpdated")
    def _info_updated(self, changes: dict[str, str | None], at: datetime, actor: str) -> None:
        for field, value in updated_values(self.customer, changes).items():
            setattr(self, field, value)
        self._touch(at)

    @event("KeyPersonAdded")
    def _key_person_added(self, person: dict[str, Any], at: datetime, actor: str) -> None:
        self.key_persons = [*self.key_persons, person]
        self._touch(at)

    @event("CompetitorRecorded")
    def _competitor_recorded(self, competitor: dict[str, Any], at: datetime, actor: str) -> None:
        self.competitors = [*self.competitors, competitor]
        self._touch(at)

    @event("DocumentAttached")
    def _document_attached(self, document: dict[str, Any], at: datetime, actor: str) -> None:
        self.documents = [*self.documents, document]
        self._touch(at)

    @event("OpportunityPaused")
    def _paused(self, reason: str, until: date | None, at: datetime, actor: str) -> None:
        self.status, self.pause_reason = Status.PAUSED, reason
        self.paused_until, self.paused_at = until, at
        self._touch(at)

    @event("OpportunityResumed")
    def _resumed(self, paused_seconds: float, at: datetime, actor: str) -> None:
        self.status = Status.OPEN
        self.pause_reason = self.paused_until = self.paused_at = None
        self._touch(at, progress=True)

    @event("OpportunityDeferred")
    def _deferred(  # noqa: PLR0913 - what the event records (older events have no note)
        self,
        reason: str,
        revisit_on: date,
        paused_seconds: float,
        at: datetime,
        actor: str,
        note: str | None = None,
    ) -> None:
        self.status, self.deferred_reason, self.revisit_on = Status.DEFERRED, reason, revisit_on
        self.deferred_note = note
        self.pause_reason = self.paused_until = self.paused_at = None
        self._touch(at)

    @event("OpportunityReactivated")
    def _reactivated(self, at: datetime, actor: str) -> None:
        self.status = Status.OPEN
        self.deferred_reason = self.revisit_on = self.deferred_note = None
        self._touch(at, progress=True)

    @event("OpportunityReclaimed")
    def _reclaimed(
        self,
        reason: str,
        previous_owner_id: str | None,
        previous_status: str,
        rule_id: str | None,
        command_id: str | None,
        at: datetime,
        actor: str,
    ) -> None:
        self.status, self.owner_id = Status.POOLED, None
        self.deferred_reason = self.revisit_on = self.deferred_note = None
        if previous_owner_id is not None:
            earlier = tuple(r for r in self.reclaimed_from if r[0] != previous_owner_id)
            self.reclaimed_from = (*earlier, (previous_owner_id, at))
        if command_id is not None:
            self.reclaimed_by = (*self.reclaimed_by, command_id)
        self._touch(at)

    @event("OpportunityAssigned")
    def _assigned(
        self,
        owner_id: str,
        previous_owner_id: str | None,
        team_id: str | None,
        claimed: bool,
        at: datetime,
        actor: str,
        override: bool = False,
        rule_id: str | None = None,
    ) -> None:
        self.owner_id, self.team_id = owner_id, team_id
        if self.status == Status.POOLED:
            self.status = Status.OPEN
        self._touch(at, progress=True)

    @event("OpportunityWon")
    def _won(
        self,
        stage: str,
        amount: Decimal,
        currency: str,
        contract_ref: str,
        contract_start_on: date | None,
        contract_end_on: date | None,
        at: datetime,
        actor: str,
    ) -> None:
        self.status, self.amount, self.contract_ref = Status.WON, amount, contract_ref
        self.contract_start_on, self.contract_end_on = contract_start_on, contract_end_on
        self.closed_at = at
        self._touch(at)

    @event("OpportunityLost")
    def _lost(
        self, stage: str, reason: str, competitor: str | None, at: datetime, actor: str
    ) -> None:
        self.status, self.close_reason, self.lost_competitor = Status.LOST, reason, competitor
        self.closed_at = at
        self.pause_reason = self.paused_until = self.paused_at = None
        self.deferred_reason = self.revisit_on = self.deferred_note = None
        self._touch(at)

    @event("OpportunityVoided")
    def _voided(self, reason: str, previous_status: str, at: datetime, actor: str) -> None:
        self.status, self.close_reason, self.closed_at = Status.VOIDED, reason, at
        self.pause_reason = self.paused_until = self.paused_at = None
        self.deferred_reason = self.revisit_on = self.deferred_note = None
        self._touch(at)
