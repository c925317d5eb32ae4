"""The aggregates that make the pool rules hold when commands race (decision 0037): an owner's
ledger, written by every claim and pool-checked assignment, and a round_robin rule's cursor
in a team."""

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from opportunity.domain.ids import ID_NAMESPACE

# Claims older than this before the latest are of no calendar day still counted.
CLAIMS_KEPT = timedelta(days=2)


class PoolLedger(Aggregate):
    """One owner's claims and assignments under pool rules. Each writes the ledger, so two
    that race for the owner's last slot conflict in the event store, and the later one is
    checked again with the first counted. Keeps the claims of the last two days."""

    @staticmethod
    def create_id(owner_id: str) -> UUID:
        return uuid5(ID_NAMESPACE, f"pool-ledger/{owner_id}")

    @event("Opened")
    def __init__(self, owner_id: str) -> None:
        self.owner_id = owner_id
        self.recent_claims: list[dict[str, Any]] = []

    def claims_on(self, rule_id: str, day: date, zone: ZoneInfo) -> int:
        """The claims under the rule on a calendar day of `zone`."""
        return sum(
            1
            for claim in self.recent_claims
            if claim["rule_id"] == rule_id and claim["at"].astimezone(zone).date() == day
        )

    def took(
        self, opportunity_id: str, rule_id: str, claimed: bool, override: bool, at: datetime
    ) -> None:
        self._took(
            opportunity_id=opportunity_id,
            rule_id=rule_id,
            claimed=claimed,
            override=override,
            at=at,
        )

    @event("Took")
    def _took(
        self,
        opportunity_id: str,  # noqa: ARG002 - recorded in the event
        rule_id: str,
        claimed: bool,
        override: bool,  # noqa: ARG002
        at: datetime,
    ) -> None:
        if claimed:
            kept = [c for c in self.recent_claims if c["at"] > at - CLAIMS_KEPT]
            self.recent_claims = [*kept, {"rule_id": rule_id, "at": at}]


class PoolCursor(Aggregate):
    """Where a round_robin pool rule stands in one team: the rep it gave to last."""

    @staticmethod
    def create_id(rule_id: str, team_id: str) -> UUID:
        return uuid5(ID_NAMESPACE, f"pool-cursor/{rule_id}/{team_id}")

    @event("Started")
    def __init__(self, rule_id: str, team_id: str) -> None:
        self.rule_id, self.team_id = rule_id, team_id
        self.last_owner_id: str | None = None

    def gave(self, owner_id: str, opportunity_id: str) -> None:
        self._gave(owner_id=owner_id, opportunity_id=opportunity_id)

    @event("Gave")
    def _gave(self, owner_id: str, opportunity_id: str) -> None:  # noqa: ARG002
        self.last_owner_id = owner_id
