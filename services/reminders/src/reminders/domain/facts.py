"""What the reminders service knows of an opportunity, and how each event changes it (pure).

Only what the schedule depends on is kept: type, tier, ownership, stage, status, owner and
team, the time and version of the last progress, and the dates of a pause, a deferral or a
won contract. Progress (SPEC §6) = create, advance, revert, follow-up, resume, reactivate,
assign; it restarts the staleness clock.
"""

from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Any

from contracts import schedule
from contracts.envelope import Envelope
from contracts.opportunity import (
    PAYLOADS,
    PROGRESS_EVENTS,
    OpportunityAssignedV1,
    OpportunityCreatedV1,
    OpportunityDeferredV1,
    OpportunityPausedV1,
    OpportunityWonV1,
    StageAdvancedV1,
    StageRevertedV1,
    Status,
)


@dataclass(frozen=True, slots=True)
class OpportunityFacts:
    opportunity_id: str
    partition: int
    version: int
    type: str
    tier: str
    ownership: str
    stage: str
    status: Status
    owner_id: str | None
    team_id: str | None
    last_progress_at: datetime
    last_progress_version: int
    paused_until: date | None = None
    revisit_on: date | None = None
    contract_end_on: date | None = None

    def as_dict(self) -> dict[str, Any]:
        """Every field by name, the status as its string."""
        found = {f.name: getattr(self, f.name) for f in fields(self)}
        found["status"] = self.status.value
        return found

    @property
    def schedule(self) -> schedule.Facts:
        return schedule.Facts(
            type=self.type,
            tier=self.tier,
            ownership=self.ownership,
            stage=self.stage,
            status=self.status,
            last_progress_at=self.last_progress_at,
            paused_until=self.paused_until,
            revisit_on=self.revisit_on,
            contract_end_on=self.contract_end_on,
        )


def evolve(
    current: OpportunityFacts | None, envelope: Envelope, partition: int
) -> OpportunityFacts | None:
    """The facts after `envelope`. A redelivered or older event (version not above the one
    applied) changes nothing; an event of an opportunity never created here gives None.
    Raises pydantic's ValidationError when a known event's payload is malformed."""
    kind = envelope.event_type
    if current is None:
        return _created(envelope, partition) if kind == "OpportunityCreated" else None
    if envelope.version <= current.version:
        return current
    facts = replace(current, version=envelope.version, partition=partition)
    payload = PAYLOADS[kind].model_validate(envelope.payload) if kind in PAYLOADS else None
    if isinstance(payload, StageAdvancedV1 | StageRevertedV1):
        facts = replace(facts, stage=payload.to_stage)
    elif isinstance(payload, OpportunityPausedV1):
        facts = replace(facts, status=Status.PAUSED, paused_until=payload.until)
    elif kind == "OpportunityResumed":
        facts = replace(facts, status=Status.OPEN, paused_until=None)
    elif isinstance(payload, OpportunityDeferredV1):
        facts = replace(
            facts, status=Status.DEFERRED, revisit_on=payload.revisit_on, paused_until=None
        )
    elif kind == "OpportunityReactivated":
        facts = replace(facts, status=Status.OPEN, revisit_on=None)
    elif kind == "OpportunityReclaimed":
        facts = replace(facts, status=Status.POOLED, owner_id=None, revisit_on=None)
    elif isinstance(payload, OpportunityAssignedV1):
        facts = replace(
            facts,
            owner_id=payload.owner_id,
            team_id=payload.team_id or facts.team_id,
            status=Status.OPEN if facts.status == Status.POOLED else facts.status,
        )
    elif isinstance(payload, OpportunityWonV1):
        facts = replace(facts, status=Status.WON, contract_end_on=payload.contract_end_on)
    elif kind in ("OpportunityLost", "OpportunityVoided"):
        closed = Status.LOST if kind == "OpportunityLost" else Status.VOIDED
        facts = replace(facts, status=closed, paused_until=None, revisit_on=None)
    if kind in PROGRESS_EVENTS:
        facts = replace(
            facts, last_progress_at=envelope.occurred_at, last_progress_version=envelope.version
        )
    return facts


def reclaimed(facts: OpportunityFacts) -> OpportunityFacts:
    """What a reclamation does to the facts (the backtest applies its own reclaims)."""
    return replace(facts, status=Status.POOLED, owner_id=None, revisit_on=None)


def _created(envelope: Envelope, partition: int) -> OpportunityFacts:
    payload = OpportunityCreatedV1.model_validate(envelope.payload)
    return OpportunityFacts(
        opportunity_id=envelope.opportunity_id,
        partition=partition,
        version=envelope.version,
        type=payload.type.value,
        tier=payload.customer.tier.value,
        ownership=payload.customer.ownership.value,
        stage=payload.stage,
        # As the aggregate decides: created without an owner, it waits in the pool.
        status=Status.OPEN if payload.owner_id is not None else Status.POOLED,
        owner_id=payload.owner_id,
        team_id=payload.team_id,
        last_progress_at=envelope.occurred_at,
        last_progress_version=envelope.version,
    )
