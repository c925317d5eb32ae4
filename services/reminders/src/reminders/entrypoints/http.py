"""HTTP of the reminders service (port 8002): health, readiness, metrics, and why an
opportunity was (or will be) reminded."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from chassis.auth import SEND_BEARER, Forbidden, Principal, Principals, bearer_principal
from chassis.http import Readiness, probes
from contracts.problems import refusals
from contracts.rules import Role
from reminders.adapters.store import Store
from reminders.domain.clock import Clock
from reminders.domain.timers import Planner, reminder_id_for
from reminders.metrics import Metrics


class Api:
    """What the routes need, wired once by the composition root."""

    def __init__(
        self,
        store: Store,
        planner: Planner,
        principals: Principals,
        clock: Clock,
        metrics: Metrics,
        readiness: Readiness,
    ) -> None:
        self.store, self.planner, self.principals = store, planner, principals
        self.clock, self.metrics, self.readiness = clock, metrics, readiness

    async def read_gauges(self) -> None:
        """The outbox and parked deliveries gauges as the store has them now."""
        try:
            self.metrics.outbox_pending.set(await run_in_threadpool(self.store.count_pending))
            self.metrics.deliveries_parked.set(await run_in_threadpool(self.store.count_parked))
        except Exception:  # noqa: S110 - the store is down: /readyz says so; metrics still answer
            pass


def build_router(api: Api) -> APIRouter:
    router = APIRouter()
    # This service has always answered a token nobody holds as it answers no token.
    Who = Annotated[Principal, Depends(bearer_principal(api.principals.find, SEND_BEARER))]

    router.include_router(probes(api.readiness, api.metrics.registry, api.read_gauges))

    @router.get(
        "/opportunities/{opportunity_id}/reminders",
        tags=["queries"],
        responses=refusals(401, 403, 404, 503),
    )
    async def explain(opportunity_id: str, who: Who) -> Response:
        """The facts the timers follow from, the timers under the rules now, and every
        timer fired, with what it sent."""
        # PostgreSQL text cannot hold NUL: no opportunity has such an id, and the query would fail.
        found = (
            None
            if "\x00" in opportunity_id
            else await run_in_threadpool(api.store.facts, opportunity_id)
        )
        if found is None:
            raise HTTPException(
                404, {"error": "not_found", "message": f"no opportunity {opportunity_id}"}
            )
        facts, next_due_at = found
        if not _may_read(who, facts.owner_id, facts.team_id):
            raise Forbidden("not yours to see", rule="role.read")
        fired = await run_in_threadpool(api.store.fired, opportunity_id)
        now = api.clock()
        timers = [
            {
                "reminder_id": reminder_id_for(opportunity_id, t.rule_id, t.due_at),
                "kind": t.kind.value,
                "rule_id": t.rule_id,
                "due_at": t.due_at,
                "detail": t.detail,
            }
            for t in api.planner.timers(facts)
        ]
        body = {
            "opportunity_id": opportunity_id,
            "rules_version": api.planner.rules.version,
            "now": now,
            "facts": {k: v for k, v in facts.as_dict().items() if k != "opportunity_id"},
            "next_due_at": next_due_at,
            "timers": timers,
            "fired": [_fired(row) for row in fired],
        }
        return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")

    return router


def _may_read(who: Principal, owner_id: str | None, team_id: str | None) -> bool:
    if who.role in (Role.ADMIN, Role.SERVICE, Role.VIEWER):
        return True
    if who.role is Role.MANAGER:
        return who.team_id is not None and who.team_id == team_id
    return owner_id == who.id


def _fired(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "reminder_id": row["reminder_id"],
        "kind": row["kind"],
        "rule_id": row["rule_id"],
        "due_at": row["due_at"],
        "fired_at": row["fired_at"],
        "sent": not row["pending"],
        "reminder": None if row["reminder"] is None else orjson.loads(row["reminder"]),
        "command": None if row["command"] is None else orjson.loads(row["command"]),
    }
