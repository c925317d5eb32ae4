"""Envelopes of one opportunity's events, as the opportunity service emits them (SPEC §3.1),
each checked against the contract before a test uses it."""

from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from uuid import uuid4

from contracts.envelope import Envelope, event_id_for
from contracts.opportunity import PAYLOADS
from tests.support.principals import new_uscc

ZONE_OFFSET = timedelta(hours=8)
# A Monday, 09:00 in Asia/Shanghai.
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def envelope_of(
    aggregate_id: str,
    version: int,
    event_type: str,
    at: datetime,
    payload: dict[str, Any],
    actor: str,
) -> dict[str, Any]:
    """An event of any aggregate on the events topic, as the relay sends it (checked against
    the envelope's contract; each history checks the payload against its own)."""
    envelope = {
        "event_id": event_id_for(aggregate_id, version),
        "event_type": event_type,
        "schema_version": 1,
        "opportunity_id": aggregate_id,
        "version": version,
        "occurred_at": at.isoformat(),
        "recorded_at": (at + timedelta(milliseconds=5)).isoformat(),
        "actor": actor,
        "payload": payload,
    }
    Envelope.model_validate(envelope)
    return envelope


class History:
    """One opportunity: call the command methods in order; `envelopes` is what it emitted."""

    def __init__(
        self,
        at: datetime = T0,
        *,
        type: str = "new",  # noqa: A002
        tier: str = "KA",
        ownership: str = "SOE",
        owner_id: str | None = "rep-1",
        team_id: str | None = "east",
        amount: str | None = "1000.00",
        currency: str = "CNY",
        expected_close_on: date | None = None,
        pipeline_id: str | None = None,
        first_stage: str = "initial_contact",
        opportunity_id: str | None = None,
        industry: str | None = None,
        classified_by: str | None = None,
    ) -> None:
        """Without `classified_by` the customer is as recorded before classification (SPEC
        §8.2) was: no such key."""
        self.id = opportunity_id or str(uuid4())
        customer: dict[str, Any] = {
            "uscc": new_uscc(),
            "name": f"客户 {self.id[:8]}",
            "tier": tier,
            "ownership": ownership,
            "industry": industry,
            "region": None,
        }
        if classified_by is not None:
            customer["classified_by"] = classified_by
        self.envelopes: list[dict[str, Any]] = []
        self.stage = first_stage
        self._emit(
            "OpportunityCreated",
            at,
            {
                "type": type,
                "pipeline_id": pipeline_id or type,
                "stage": first_stage,
                "customer": customer,
                "owner_id": owner_id,
                "team_id": team_id,
                "title": None,
                "amount": amount,
                "currency": currency,
                "expected_close_on": None
                if expected_close_on is None
                else expected_close_on.isoformat(),
                "source": None,
                "lead_id": None,
                "renewal_of": None,
            },
            actor=owner_id or "service",
        )
        self._paused_at: datetime | None = None

    # -- commands --------------------------------------------------------------------------

    def advance(self, to_stage: str, at: datetime, skipped: tuple[str, ...] = ()) -> "History":
        self._emit(
            "StageAdvanced",
            at,
            {"from_stage": self.stage, "to_stage": to_stage, "skipped": list(skipped)},
        )
        self.stage = to_stage
        return self

    def revert(self, to_stage: str, at: datetime) -> "History":
        self._emit(
            "StageReverted",
            at,
            {"from_stage": self.stage, "to_stage": to_stage, "reason": "customer rethinks"},
        )
        self.stage = to_stage
        return self

    def follow_up(self, at: datetime) -> "History":
        return self._emit("FollowUpLogged", at, {"kind": "call", "note": "called"})

    def update(self, at: datetime, **changes: str | None) -> "History":
        return self._emit("InfoUpdated", at, {"changes": changes})

    def pause(self, at: datetime, until: date | None = None) -> "History":
        self._paused_at = at
        return self._emit(
            "OpportunityPaused",
            at,
            {"reason": "budget freeze", "until": None if until is None else until.isoformat()},
        )

    def resume(self, at: datetime) -> "History":
        return self._emit("OpportunityResumed", at, {"paused_seconds": self._pause_ends(at)})

    def defer(
        self,
        at: datetime,
        revisit_on: date,
        reason: str = "tender next year",
        note: str | None = None,
    ) -> "History":
        """Free text as `reason` is a deferral recorded before the reasons were coded."""
        payload: dict[str, Any] = {
            "reason": reason,
            "revisit_on": revisit_on.isoformat(),
            "paused_seconds": self._pause_ends(at),
        }
        if note is not None:
            payload["note"] = note
        return self._emit("OpportunityDeferred", at, payload)

    def reactivate(self, at: datetime) -> "History":
        return self._emit("OpportunityReactivated", at, {})

    def reclaim(self, at: datetime, previous_status: str = "open") -> "History":
        return self._emit(
            "OpportunityReclaimed",
            at,
            {
                "reason": "stale",
                "previous_owner_id": "rep-1",
                "previous_status": previous_status,
                "rule_id": "ka-default",
                "command_id": str(uuid4()),
            },
        )

    def assign(
        self, owner_id: str, at: datetime, team_id: str | None = None, *, claimed: bool = False
    ) -> "History":
        return self._emit(
            "OpportunityAssigned",
            at,
            {
                "owner_id": owner_id,
                "previous_owner_id": None,
                "team_id": team_id,
                "claimed": claimed,
            },
            actor=owner_id if claimed else "rep-1",
        )

    def win(self, at: datetime, amount: str = "1000.00", currency: str = "CNY") -> "History":
        return self._emit(
            "OpportunityWon",
            at,
            {
                "stage": self.stage,
                "amount": amount,
                "currency": currency,
                "contract_ref": f"C-{self.id[:6]}",
                "contract_start_on": None,
                "contract_end_on": None,
            },
        )

    def lose(self, at: datetime, reason: str = "price") -> "History":
        self._paused_at = None
        return self._emit(
            "OpportunityLost", at, {"stage": self.stage, "reason": reason, "competitor": None}
        )

    def void(self, at: datetime, previous_status: str = "open") -> "History":
        self._paused_at = None
        return self._emit(
            "OpportunityVoided", at, {"reason": "duplicate", "previous_status": previous_status}
        )

    def unknown(self, at: datetime) -> "History":
        return self._emit("SomethingNewLater", at, {"anything": 1})

    # -- internals -------------------------------------------------------------------------

    def _pause_ends(self, at: datetime) -> float:
        paused = (at - self._paused_at).total_seconds() if self._paused_at else 0.0
        self._paused_at = None
        return paused

    def _emit(
        self, event_type: str, at: datetime, payload: dict[str, Any], actor: str = "rep-1"
    ) -> "History":
        envelope = envelope_of(self.id, len(self.envelopes) + 1, event_type, at, payload, actor)
        if event_type in PAYLOADS:
            PAYLOADS[event_type].model_validate(payload)
        self.envelopes.append(envelope)
        return self


class Emitted(Protocol):
    """What emitted envelopes: an opportunity's history, a customer record's (customers.py)."""

    envelopes: list[dict[str, Any]]


def envelopes_of(*histories: Emitted) -> list[dict[str, Any]]:
    """Every envelope, in the order each aggregate emitted them, aggregates interleaved by
    time (as the relay would publish them)."""
    every = [e for h in histories for e in h.envelopes]
    return sorted(every, key=lambda e: (e["recorded_at"], e["opportunity_id"], e["version"]))
