"""Deferring an opportunity for a coded reason (未来机会, SPEC §9 and issue 14): the reason is one
of the rules file's `deferral_reasons`, some of which need a note, and the day it is revisited
defaults to the reason's `revisit_after` from the deferral day in the business time zone."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from contracts.rules import Rulebook
from opportunity.domain.errors import InvalidValue


def revisit_day(
    rules: Rulebook,
    reason: str,
    note: str | None,
    revisit_on: date | None,
    at: datetime,
    zone: ZoneInfo,
) -> date:
    """The day a deferral for `reason` is revisited: `revisit_on` when given, else the
    deferral day + the reason's `revisit_after`. InvalidValue naming `reason` (an unknown
    one, listing the known ids) or `note` (missing where the reason requires one)."""
    try:
        coded = rules.deferral_reason(reason)
    except KeyError:
        known = [r.id for r in rules.deferral_reasons]
        raise InvalidValue(
            "reason", f"the reason is not a deferral reason; use one of {known}"
        ) from None
    if coded.note_required and not (note and note.strip()):
        raise InvalidValue("note", f"a deferral for {reason!r} needs a note saying more")
    if revisit_on is not None:
        return revisit_on
    return at.astimezone(zone).date() + coded.revisit_after
