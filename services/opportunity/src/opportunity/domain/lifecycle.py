"""The lifecycle rules of an opportunity (SPEC §2.3): which status each command is allowed
from, and the values a command must bring before anything is recorded."""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from contracts.opportunity import ACTIVE_STATUSES, FollowUpKind, Status
from contracts.rules import ForecastCategory
from opportunity.domain.errors import CommandNotAllowed, InvalidValue, OccurredAtRefused

OPEN, PAUSED, DEFERRED, POOLED = Status.OPEN, Status.PAUSED, Status.DEFERRED, Status.POOLED
WON, LOST, VOIDED = Status.WON, Status.LOST, Status.VOIDED
ACTIVE = frozenset(ACTIVE_STATUSES)
_NOT_VOIDED = frozenset(Status) - {VOIDED}

# Which status each command is allowed from, keyed by the aggregate's method names.
ALLOWED_FROM: dict[str, frozenset[Status]] = {
    "advance": frozenset({OPEN}),
    "revert": frozenset({OPEN}),
    "log_follow_up": frozenset({OPEN, PAUSED, DEFERRED}),
    "update_info": ACTIVE,
    "add_key_person": _NOT_VOIDED,
    "record_competitor": _NOT_VOIDED,
    "attach_document": _NOT_VOIDED,
    "pause": frozenset({OPEN}),
    "resume": frozenset({PAUSED}),
    "defer": frozenset({OPEN, PAUSED}),
    "reactivate": frozenset({DEFERRED}),
    "reclaim": frozenset({OPEN, DEFERRED}),
    "assign": ACTIVE,
    "claim": frozenset({POOLED}),
    "win": frozenset({OPEN}),
    "lose": frozenset({OPEN, PAUSED, DEFERRED}),
    "void": ACTIVE,
}

# Fields `update_info` may change, with how their text in InfoUpdated becomes state.
UPDATABLE = (
    "title",
    "amount",
    "currency",
    "expected_close_on",
    "customer_name",
    "industry",
    "region",
    # A manager's override of the stage's forecast category (SPEC §9); null clears it.
    "forecast_category",
)
FORECAST_CATEGORIES = frozenset(category.value for category in ForecastCategory)

FOLLOW_UP_KINDS = frozenset(kind.value for kind in FollowUpKind)


def allowed_commands(status: Status) -> list[str]:
    return sorted(name for name, statuses in ALLOWED_FROM.items() if status in statuses)


def check_allowed(command: str, status: Status, last_event_at: datetime, at: datetime) -> None:
    """Refuse a command its status does not allow, or one dated before the last event."""
    if status not in ALLOWED_FROM[command]:
        raise CommandNotAllowed(command, str(status), allowed_commands(status))
    if at < last_event_at:
        raise OccurredAtRefused(
            f"occurred_at {at.isoformat()} is before the opportunity's last event "
            f"({last_event_at.isoformat()})"
        )


def required(field: str, text: str) -> None:
    if not text or not text.strip():
        raise InvalidValue(field, f"{field} is required")


def check_follow_up_kind(kind: str) -> None:
    if kind not in FOLLOW_UP_KINDS:
        raise InvalidValue("kind", f"the kind is not one of {sorted(FOLLOW_UP_KINDS)}")


def check_changes(changes: dict[str, str | None]) -> None:
    """Refuse, before anything is recorded, a field an update may not change or a changed
    value the event body could not read."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise InvalidValue(unknown[0], "this field cannot be changed by an update")
    for name, text in changes.items():
        _check_readable(name, text)


def updated_values(customer: dict[str, Any], changes: dict[str, str | None]) -> dict[str, Any]:
    """The attributes an InfoUpdated event's changes give the opportunity, by name."""
    values: dict[str, Any] = {}
    for field, text in changes.items():
        if field == "amount":
            values["amount"] = Decimal(text) if text is not None else None
        elif field == "expected_close_on":
            values["expected_close_on"] = date.fromisoformat(text) if text else None
        elif field in ("customer_name", "industry", "region"):
            customer = {**customer, "name" if field == "customer_name" else field: text}
            values["customer"] = customer
        elif field == "forecast_category":
            values["forecast_category_override"] = text
        else:
            values[field] = text
    return values


def _check_readable(field: str, text: str | None) -> None:
    if text is None:
        if field == "customer_name":
            raise InvalidValue(field, "a customer keeps its name")
        return
    try:
        if field == "amount" and Decimal(text) < 0:
            raise InvalidValue(field, "an amount is not negative")
        if field == "expected_close_on":
            date.fromisoformat(text)
        if field == "forecast_category" and text not in FORECAST_CATEGORIES:
            raise InvalidValue(field, f"the {field} is not one of {sorted(FORECAST_CATEGORIES)}")
    except (ArithmeticError, ValueError):
        raise InvalidValue(field, f"not a valid {field}") from None
