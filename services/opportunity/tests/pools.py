"""The pool rules' side of the application for tests: a Holdings that counts from the
application's own store (what the listing does, without SQL), pool rules with small figures,
an application with both, and the principals that act."""

from datetime import datetime
from typing import Any
from uuid import UUID

from chassis.auth import Principal
from contracts.customer import Customer
from contracts.customer_rules import Pool
from contracts.opportunity import Status
from contracts.rules import Role, Rulebook, load_rulebook
from opportunity.application.app import NewOpportunity, OpportunityApp
from opportunity.application.pool import Reclaimed, facts_of
from opportunity.application.stored_topics import OPPORTUNITY_TOPICS
from opportunity.application.unit_of_work import Context
from opportunity.domain.opportunity import Opportunity
from opportunity.domain.pool_rules import HELD_STATUSES, Held
from tests.support.principals import customer

EVERYTHING = 10**9
TEAMS = {"east": ["rep-1", "rep-2", "rep-3"], "west": ["rep-9"]}
PRINCIPALS = {
    **{rep: Principal(rep, Role.REP, team) for team, reps in TEAMS.items() for rep in reps},
    "manager-east": Principal("manager-east", Role.MANAGER, "east"),
    "admin": Principal("admin", Role.ADMIN),
    "service": Principal("service", Role.SERVICE),
}

# KA: 2 claims a day, 3 held, a day's cooldown, stays pooled; SMB: 2 held, to the least loaded
# rep; SMB renewals: 2 held, in turn.
SMALL = Pool.model_validate(
    {
        "rules": [
            {
                "id": "ka",
                "match": {"tier": "KA"},
                "claim_limit_per_day": 2,
                "max_held": 3,
                "previous_owner_cooldown": "P1D",
            },
            {"id": "smb", "match": {"tier": "SMB"}, "max_held": 2, "redistribute": "least_loaded"},
            {
                "id": "smb-renewal",
                "match": {"tier": "SMB", "type": "renewal"},
                "max_held": 2,
                "redistribute": "round_robin",
            },
        ]
    }
)


def rules_with(pool: Pool) -> Rulebook:
    return load_rulebook().model_copy(update={"pool": pool})


class StoreHoldings:
    def __init__(self, app: OpportunityApp) -> None:
        self._app = app

    def _every(self) -> list[Opportunity]:
        recorded = self._app.recorder.select_notifications(
            start=None, limit=EVERYTHING, topics=OPPORTUNITY_TOPICS
        )
        ids = dict.fromkeys(UUID(str(n.originator_id)) for n in recorded)
        return [self._app.opportunity(i) for i in ids]

    def held_by(self, owner_ids: Any) -> list[Held]:
        return [
            Held(str(o.id), o.owner_id, facts_of(o))
            for o in self._every()
            if o.owner_id is not None and o.owner_id in owner_ids and o.status in HELD_STATUSES
        ]

    def reclaimed_from(self, owner_id: str) -> list[Reclaimed]:
        return [
            Reclaimed(str(o.id), facts_of(o), dict(o.reclaimed_from)[owner_id])
            for o in self._every()
            if o.status == Status.POOLED and owner_id in dict(o.reclaimed_from)
        ]


def pool_app(pool: Pool = SMALL, env: dict[str, str] | None = None) -> OpportunityApp:
    """An application under `pool`, its reps those of TEAMS, counting in its own store."""
    app = OpportunityApp(
        rules_with(pool),
        env=env or {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        team_of=lambda pid: PRINCIPALS[pid].team_id if pid in PRINCIPALS else None,
        reps_of=lambda team: TEAMS.get(team, []),
    )
    app.pool.count_in(StoreHoldings(app))
    return app


def as_(principal_id: str, at: datetime) -> Context:
    return Context(PRINCIPALS[principal_id], at)


def create(
    app: OpportunityApp,
    at: datetime,
    owner_id: str | None = None,
    tier: str = "KA",
    type_: str = "new",
    team_id: str = "east",
) -> UUID:
    """A new opportunity, created by an admin; pooled without an owner."""
    new = NewOpportunity(
        type=type_,
        customer=Customer.model_validate(customer(tier=tier)),
        owner_id=owner_id,
        team_id=team_id,
    )
    app.run(lambda uow: app.create(uow, new, as_("admin", at)))
    return new.id
