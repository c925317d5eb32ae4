"""A deterministic event history for the benches: opportunities created, followed up,
advanced, won, lost or left open, 8 events each, interleaved in blocks as a relay publishes
them."""

from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.envelope import event_id_for

EVENTS_PER_OPPORTUNITY = 8
BLOCK = 5000  # opportunities whose events interleave
T0 = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)


def envelope(position: int) -> dict[str, Any]:
    """The envelope at 1-based `position` of a deterministic history."""
    index = position - 1
    block, within = divmod(index, BLOCK * EVENTS_PER_OPPORTUNITY)
    step, member = divmod(within, BLOCK)
    i = block * BLOCK + member
    oid = f"00000000-0000-4000-8000-{i:012d}"
    at = T0 + timedelta(hours=block * 24 + step * 3, seconds=member)
    version = step + 1
    kind, payload = _event(i, step)
    return {
        "event_id": event_id_for(oid, version),
        "event_type": kind,
        "schema_version": 1,
        "opportunity_id": oid,
        "version": version,
        "occurred_at": at.isoformat(),
        "recorded_at": at.isoformat(),
        "actor": f"rep-{i % 40}",
        "payload": payload,
    }


def _event(i: int, step: int) -> tuple[str, dict[str, Any]]:
    stages = ("initial_contact", "requirements", "proposal", "negotiation", "signing")
    if step == 0:
        return "OpportunityCreated", {
            "type": "new",
            "pipeline_id": "new",
            "stage": stages[0],
            "customer": {
                "uscc": f"91110000{i:010d}",
                "name": f"客户 {i}",
                "tier": "SMB" if i % 3 else "KA",
                "ownership": ("SOE", "PRIVATE", "FOREIGN", "OTHER")[i % 4],
                "industry": "manufacturing",
                "region": "east",
            },
            "owner_id": f"rep-{i % 40}",
            "team_id": f"team-{i % 5}",
            "amount": f"{10_000 + i % 90_000}.00",
            "currency": "CNY",
            "expected_close_on": f"2025-{7 + i % 6:02d}-15",
        }
    if step in (1, 3, 5):
        return "FollowUpLogged", {"kind": "call", "note": "called the buyer"}
    if step in (2, 4, 6):
        moved = step // 2
        return "StageAdvanced", {
            "from_stage": stages[moved - 1],
            "to_stage": stages[moved],
            "skipped": [],
        }
    if i % 3 == 0:
        return "OpportunityWon", {
            "stage": stages[3],
            "amount": "50000.00",
            "currency": "CNY",
            "contract_ref": f"C-{i}",
        }
    if i % 3 == 1:
        return "OpportunityLost", {"stage": stages[3], "reason": "price", "competitor": None}
    return "InfoUpdated", {"changes": {"amount": "60000.00"}}
