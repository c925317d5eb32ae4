"""A target's or a competition's event (SPEC §9) as its row: `bi_target_change` (one per
target event) and `bi_competition` (a competition's definition); pure.

Each event stands alone (its payload names the whole key, or holds the whole definition), so
rows need no earlier event: versions only identify them, and a redelivered one is the same row.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from contracts.competitions import COMPETITION_PAYLOADS
from contracts.envelope import Envelope
from contracts.targets import TARGET_PAYLOADS

log = logging.getLogger(__name__)
P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class TargetChange:
    """One `bi_target_change` row: field names are its column names."""

    target_id: str
    version: int
    event_type: str
    period: str
    scope: str
    scope_id: str
    metric: str
    value: Decimal
    previous_value: Decimal | None
    reason: str | None
    team_id: str | None
    actor: str
    occurred_at: datetime
    event_id: str


@dataclass(frozen=True)
class CompetitionRow:
    """One `bi_competition` row: field names are its column names."""

    competition_id: str
    record_id: str
    name: str
    metric: str
    from_at: datetime
    to_at: datetime
    team_ids: str
    tiers: str
    types: str
    defined_at: datetime
    version: int


def target_change(e: Envelope) -> TargetChange | None:
    """The row of a target event; None for a type this version does not know or a payload the
    contract refuses (logged): it is in `bi_event`, not projected."""
    p = _payload(e, TARGET_PAYLOADS)
    if p is None:
        return None
    return TargetChange(
        e.opportunity_id,
        e.version,
        e.event_type,
        p.period,
        p.scope.value,
        p.scope_id,
        p.metric.value,
        p.value,
        p.previous_value,
        p.reason,
        p.team_id,
        e.actor,
        e.occurred_at,
        e.event_id,
    )


def competition_row(e: Envelope) -> CompetitionRow | None:
    """The row of a competition's definition; None as for `target_change`."""
    p = _payload(e, COMPETITION_PAYLOADS)
    if p is None:
        return None
    return CompetitionRow(
        p.competition_id,
        e.opportunity_id,
        p.name,
        p.metric.value,
        p.from_,
        p.to,
        orjson.dumps(list(p.team_ids)).decode(),
        orjson.dumps([t.value for t in p.tiers]).decode(),
        orjson.dumps([t.value for t in p.types]).decode(),
        e.occurred_at,
        e.version,
    )


def _payload(e: Envelope, models: Mapping[str, type[P]]) -> P | None:
    """The event's payload as its model; None for a type this version does not know, or a
    payload the contract refuses (logged)."""
    model = models.get(e.event_type)
    if model is None:
        return None
    try:
        return model.model_validate(e.payload)
    except ValidationError as exc:
        _refused(e, exc)
        return None


def _refused(e: Envelope, exc: ValidationError) -> None:
    log.warning(
        "event %s (%s v%d of %s) has a payload the contract refuses: %s",
        e.event_id,
        e.event_type,
        e.version,
        e.opportunity_id,
        exc.errors()[0]["msg"],
    )
