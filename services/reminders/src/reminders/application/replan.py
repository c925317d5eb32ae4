"""After a change of the rules (or the zone, or the working-day calendar a rule counts by),
every opportunity's next look is computed again, so a tighter rule fires on time. The store
remembers what the timers were computed under (the rules' fingerprint); a copy that stops
halfway leaves the old one, and the next start does it again."""

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import orjson

from contracts.rules import LADDER_KEYS, Rulebook
from contracts.workdays import CALENDAR, WorkingDays
from reminders.domain.clock import Clock
from reminders.domain.facts import OpportunityFacts
from reminders.domain.timers import Planner

RULES_KEY = "rules_fingerprint"
REPLAN_BATCH = 2000


class PlanStore(Protocol):
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def replan(
        self, plan: Callable[[OpportunityFacts], datetime | None], after: str, limit: int
    ) -> str | None:
        """The next looks of up to `limit` opportunities after id `after`, planned again; the
        last id done (None: no more)."""


def rules_fingerprint(rules: Rulebook, zone: str) -> str:
    """What the timers depend on besides the facts: the reminder and renewal rules, the zone,
    and the calendar when a rule counts working days (a release that publishes a year's 调休
    moves their due times)."""
    content = {
        "reminders": rules.reminders.model_dump(mode="json"),
        "renewal": rules.renewal.model_dump(mode="json"),
        "version": rules.version,
        "zone": zone,
    }
    if any(
        isinstance(getattr(rule, key), WorkingDays)
        for rule in rules.reminders.rules
        for key in LADDER_KEYS
    ):
        content["calendar"] = CALENDAR
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def replan_after_rules_change(store: PlanStore, planner: Planner, clock: Clock, zone: str) -> bool:
    """Plan every opportunity again if the rules changed since the last time; whether it did."""
    fingerprint = rules_fingerprint(planner.rules, zone)
    if store.get_meta(RULES_KEY) == fingerprint:
        return False
    after: str | None = ""
    while after is not None:
        after = store.replan(lambda f: planner.first_look(f, clock()), after, REPLAN_BATCH)
    store.set_meta(RULES_KEY, fingerprint)
    return True
