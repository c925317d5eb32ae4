"""A batch's events applied to each opportunity in version order; pure.

Exactly once in effect: an event whose version is already applied is a duplicate (the event id
is derived from the version, so that covers redelivered ids too). A version that skips ahead
is a gap: the opportunity keeps its last consistent state, `awaiting_version` names what it
waits for, and the later events are held until the missing one arrives.
"""

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from contracts.envelope import Envelope
from projections.domain.deferrals import Ended, Started
from projections.domain.projection import Projector
from projections.domain.state import OpportunityState

log = logging.getLogger(__name__)


@dataclass
class Counts:
    """What became of a batch's events: applied, passed over as duplicates, held until an
    earlier version comes, released once it came, gaps found, events no figure reads."""

    applied: int = 0
    duplicates: int = 0
    held: int = 0
    released: int = 0
    gaps: int = 0
    not_projected: int = 0

    def add(self, other: "Counts") -> None:
        """Count `other`'s figures in (those both have)."""
        mine = {f.name for f in fields(self)}
        for f in fields(other):
            if f.name in mine and isinstance(value := getattr(other, f.name), int):
                setattr(self, f.name, getattr(self, f.name) + value)


@dataclass
class Ordered(Counts):
    """What applying a batch in version order changed, for the store to write."""

    # The opportunities whose state changed, by id.
    states: dict[str, OpportunityState] = field(default_factory=dict)
    # The stage visits opened or closed, by (opportunity id, visit number).
    visits: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    # The events applied, each with whether a figure reads it.
    events: list[tuple[Envelope, bool]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    # Events newly held for a missing version; ids of held events now applied or passed.
    holds: list[Envelope] = field(default_factory=list)
    released_ids: list[str] = field(default_factory=list)
    # Opportunities voided, and when (every visit of theirs says so).
    voided: list[tuple[str, datetime]] = field(default_factory=list)
    # Deferral episodes started, and ends of the open episode, in the order applied.
    deferrals: list[Started] = field(default_factory=list)
    deferral_ends: list[Ended] = field(default_factory=list)


def in_order(
    projector: Projector,
    states: Mapping[str, OpportunityState],
    held: Mapping[str, Mapping[int, Envelope]],
    events: Sequence[Envelope],
) -> Ordered:
    """Apply `events` to the stored `states`, together with the events `held` before, each
    opportunity's versions in order from the one after its state's."""
    ordered = Ordered()
    by_opportunity: dict[str, list[Envelope]] = defaultdict(list)
    for event in events:
        by_opportunity[event.opportunity_id].append(event)
    for opportunity_id, arrived in by_opportunity.items():
        _one(projector, ordered, opportunity_id, states.get(opportunity_id), held, arrived)
    return ordered


def candidates(
    waiting: Mapping[int, Envelope], arrived: Sequence[Envelope]
) -> tuple[dict[int, tuple[Envelope, bool]], int]:
    """One aggregate's events by version, each with whether it was held (a held one wins over
    an arrival of its version); and how many arrivals repeated a version already there."""
    found: dict[int, tuple[Envelope, bool]] = {v: (e, True) for v, e in waiting.items()}
    repeated = 0
    for event in arrived:
        if event.version in found:
            repeated += 1
        else:
            found[event.version] = (event, False)
    return found, repeated


def _one(
    projector: Projector,
    ordered: Ordered,
    opportunity_id: str,
    state: OpportunityState | None,
    held: Mapping[str, Mapping[int, Envelope]],
    arrived: list[Envelope],
) -> None:
    waiting = held.get(opportunity_id, {})
    by_version, repeated = candidates(waiting, arrived)
    ordered.duplicates += repeated
    expected = 1 if state is None else state.version + 1
    changed = False
    for version in sorted(by_version):
        event, was_held = by_version[version]
        if version < expected:
            if was_held:
                ordered.released_ids.append(event.event_id)
            else:
                ordered.duplicates += 1
            continue
        if version > expected:
            break
        applied = projector.apply(state, event)
        if applied is None:
            log.warning(
                "event %s v%d of %s cannot start an opportunity (%s); held",
                event.event_id,
                version,
                opportunity_id,
                event.event_type,
            )
            break
        state = applied.state
        changed = True
        ordered.applied += 1
        if was_held:
            ordered.released_ids.append(event.event_id)
            ordered.released += 1
        if not applied.projected:
            ordered.not_projected += 1
        for row in applied.visits:
            ordered.visits[(row["opportunity_id"], row["visit_no"])] = row
        ordered.history.append(applied.history)
        if event.event_type == "OpportunityVoided" and state.status == "voided":
            ordered.voided.append((opportunity_id, event.occurred_at))
        ordered.events.append((event, applied.projected))
        if applied.deferral_started is not None:
            ordered.deferrals.append(applied.deferral_started)
        if applied.deferral_ended is not None:
            ordered.deferral_ends.append(applied.deferral_ended)
        expected = version + 1
    waiting_now = [
        (event, was_held) for v, (event, was_held) in by_version.items() if v >= expected
    ]
    new_holds = [event for event, was_held in waiting_now if not was_held]
    if new_holds:
        ordered.held += len(new_holds)
        ordered.holds.extend(new_holds)
        if not waiting:
            ordered.gaps += 1
            log.warning(
                "version gap for opportunity %s: applied up to v%d, got v%s; "
                "holding its later events until v%d arrives",
                opportunity_id,
                expected - 1,
                ",".join(str(e.version) for e in new_holds),
                expected,
            )
    if state is not None:
        awaiting = expected if waiting_now else None
        if awaiting != state.awaiting_version:
            state.awaiting_version = awaiting
            changed = True
        if changed:
            ordered.states[opportunity_id] = state
