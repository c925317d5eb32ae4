"""The state of an opportunity as the service shows it (SPEC §4.1): in answers to commands and
queries, and in the listing."""

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from contracts import schedule
from contracts.opportunity import Status
from contracts.rules import Rulebook
from opportunity.domain.lifecycle import allowed_commands
from opportunity.domain.opportunity import Opportunity

# What the API calls each command of the aggregate (SPEC §4.1): the names `allowed_commands`
# lists and a refusal names.
COMMAND_NAMES = {
    "advance": "advance",
    "revert": "revert",
    "log_follow_up": "follow-ups",
    "update_info": "update",
    "add_key_person": "key-persons",
    "record_competitor": "competitors",
    "attach_document": "documents",
    "pause": "pause",
    "resume": "resume",
    "defer": "defer",
    "reactivate": "reactivate",
    "reclaim": "reclaim",
    "assign": "assign",
    "claim": "claim",
    "win": "win",
    "lose": "lose",
    "void": "void",
}
# Per status, computed once: every answer carries them.
_ALLOWED_NAMES = {
    status: tuple(sorted(COMMAND_NAMES[c] for c in allowed_commands(status))) for status in Status
}


def state_of(opportunity: Opportunity) -> dict[str, Any]:
    """Everything the aggregate knows, as JSON-ready values (no time-dependent fields)."""
    o = opportunity
    return {
        "id": str(o.id),
        "version": o.version,
        "type": o.type,
        "pipeline_id": o.pipeline_id,
        "stage": o.stage,
        "status": str(o.status),
        "customer": o.customer,
        "owner_id": o.owner_id,
        "team_id": o.team_id,
        "title": o.title,
        "amount": None if o.amount is None else str(o.amount),
        "currency": o.currency,
        "expected_close_on": _iso(o.expected_close_on),
        "source": o.source,
        "lead_id": o.lead_id,
        "renewal_of": o.renewal_of,
        "created_at": _iso(o.created_at),
        "created_by": o.created_by,
        "stage_entered_at": _iso(o.stage_entered_at),
        "last_progress_at": _iso(o.last_progress_at),
        "last_progress_version": o.last_progress_version,
        "last_event_at": _iso(o.last_event_at),
        "paused_until": _iso(o.paused_until),
        "pause_reason": o.pause_reason,
        "deferred_reason": o.deferred_reason,
        "deferred_note": o.deferred_note,
        "revisit_on": _iso(o.revisit_on),
        "closed_at": _iso(o.closed_at),
        "close_reason": o.close_reason,
        "lost_competitor": o.lost_competitor,
        "contract_ref": o.contract_ref,
        "contract_start_on": _iso(o.contract_start_on),
        "contract_end_on": _iso(o.contract_end_on),
        "follow_up_count": o.follow_up_count,
        "last_follow_up_at": _iso(o.last_follow_up_at),
        "key_persons": o.key_persons,
        "competitors": o.competitors,
        "documents": o.documents,
        "forecast_category_override": o.forecast_category_override,
        "allowed_commands": list(_ALLOWED_NAMES[Status(o.status)]),
    }


def with_schedule(
    state: dict[str, Any], rules: Rulebook, zone: ZoneInfo, now: datetime
) -> dict[str, Any]:
    """Add `next_reminder_at` and `reclaim_at`, from the same rules the reminders service runs,
    with the rule that explains each (`next_reminder`, `reclaim_rule`: what the workbench
    shows), and `forecast_category`: a manager's override, else the current stage's (SPEC §9)."""
    facts = schedule.Facts(
        type=state["type"],
        tier=state["customer"]["tier"],
        ownership=state["customer"]["ownership"],
        stage=state["stage"],
        status=Status(state["status"]),
        last_progress_at=datetime.fromisoformat(state["last_progress_at"]),
        paused_until=_date(state["paused_until"]),
        revisit_on=_date(state["revisit_on"]),
        contract_end_on=_date(state["contract_end_on"]),
    )
    timers = schedule.timers(rules, facts, zone)
    upcoming, reclaim = schedule.next_reminder(timers, now), schedule.reclaim_timer(timers)
    override = state.get("forecast_category_override")
    return {
        **state,
        "next_reminder_at": None if upcoming is None else _iso(upcoming.due_at),
        "next_reminder": None if upcoming is None else _explained(upcoming),
        "reclaim_at": None if reclaim is None else _iso(reclaim.due_at),
        "reclaim_rule": None if reclaim is None else _explained(reclaim),
        "forecast_category": override or _stage_category(rules, state),
        "forecast_category_override": override,
    }


_LADDER = frozenset(kind for kind, _ in schedule.LADDER)
# The rules-file field each timer counts, which the explanation names as `after`.
_SPAN_OF = {
    **{kind.value: field for kind, field in schedule.LADDER},
    schedule.TimerKind.PAUSE_ENDED.value: "until",
    schedule.TimerKind.REVISIT_DUE.value: "revisit_on",
}


def _explained(timer: schedule.Timer) -> dict[str, Any]:
    """A timer as the rule that set it: which rule, which of its spans (`reclaim_after: P14D`)
    or dates, counted from which instant, due when."""
    field = _SPAN_OF.get(timer.kind.value)
    return {
        "kind": timer.kind.value,
        "rule_id": timer.rule_id,
        "due_at": _iso(timer.due_at),
        "field": field,
        "after": None if field is None else timer.detail.get(field),
        # A ladder's spans count from the last progress; a pause's or deferral's date is fixed.
        "counted_from": timer.detail["last_progress_at"] if timer.kind in _LADDER else None,
    }


def _stage_category(rules: Rulebook, state: dict[str, Any]) -> str | None:
    """The forecast category the rules file gives the opportunity's stage (None: a pipeline or
    stage the rules file no longer has)."""
    try:
        pipeline = rules.pipeline(state["pipeline_id"])
    except KeyError:
        return None
    found = next((s for s in pipeline.stages if s.id == state["stage"]), None)
    return None if found is None else found.forecast_category.value


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)
