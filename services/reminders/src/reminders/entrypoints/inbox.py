"""HTTP of the reminders people read (SPEC §10.2): the inbox of fired reminders with their
deliveries, the deliveries to channels, and the retry of a parked one."""

from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import AwareDatetime

from chassis.auth import SEND_BEARER, Forbidden, Principal, Principals, bearer_principal
from contracts.problems import refusals
from contracts.reminders import ReminderKind
from contracts.rules import Role
from reminders.adapters.delivery_store import DeliveryReads, InboxQuery
from reminders.domain.clock import Clock
from reminders.domain.delivery import PARKED, STATUSES

ANYONE = (Role.ADMIN, Role.SERVICE, Role.VIEWER)
Id = Annotated[str | None, Query(min_length=1, max_length=100)]


def build_inbox_router(
    store: DeliveryReads, principals: Principals, clock: Clock, wake: Callable[[], None]
) -> APIRouter:
    router = APIRouter()
    Who = Annotated[Principal, Depends(bearer_principal(principals.find, SEND_BEARER))]

    @router.get("/reminders", tags=["queries"], responses=refusals(401, 403, 503))
    async def inbox(
        who: Who,
        owner_id: Id = None,
        team_id: Id = None,
        kind: ReminderKind | None = None,
        since: Annotated[AwareDatetime | None, Query(description="fired_at >= since")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Response:
        """Fired reminders, newest first, each with its deliveries: a rep reads their own, a
        manager their team's, admin, service and viewer anyone's."""
        if who.role is Role.REP:
            if owner_id is not None and owner_id != who.id:
                raise Forbidden("a rep reads only their own reminders", "role.own", "owner_id")
            owner_id = who.id
        elif who.role is Role.MANAGER:
            if who.team_id is None or (team_id is not None and team_id != who.team_id):
                raise Forbidden(
                    "a manager reads only their team's reminders", "role.team", "team_id"
                )
            team_id = who.team_id
        query = InboxQuery(owner_id, team_id, kind and kind.value, since, limit)
        found = await run_in_threadpool(store.inbox, query)
        return _json({"reminders": found})

    @router.get("/deliveries", tags=["queries"], responses=refusals(401, 403, 503))
    async def deliveries(
        who: Who,
        status: Annotated[str | None, Query(pattern=f"^({'|'.join(STATUSES)})$")] = None,
        channel_id: Id = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Response:
        """Deliveries to channels, newest first; a manager sees their team's."""
        if who.role not in (*ANYONE, Role.MANAGER):
            raise Forbidden(
                "deliveries are read by managers, admin, service and viewer", "role.read"
            )
        team_id = None
        if who.role is Role.MANAGER:
            if who.team_id is None:
                raise Forbidden("a manager without a team reads no deliveries", "role.team")
            team_id = who.team_id
        found = await run_in_threadpool(store.deliveries, status, channel_id, team_id, limit)
        return _json({"deliveries": [_delivery(row) for row in found]})

    @router.post(
        "/deliveries/{delivery_id}/retry",
        tags=["commands"],
        responses=refusals(401, 403, 404, 409, 503),
    )
    async def retry(delivery_id: str, who: Who) -> Response:
        """A parked delivery is tried again from its first attempt (admin, or the manager of
        its team)."""
        if who.role not in (Role.ADMIN, Role.MANAGER):
            raise Forbidden("a delivery is retried by an admin or the team's manager", "role.retry")
        row = (
            None if "\x00" in delivery_id else await run_in_threadpool(store.delivery, delivery_id)
        )
        if row is None:
            raise HTTPException(404, {"error": "not_found", "message": "no such delivery"})
        if who.role is Role.MANAGER and (who.team_id is None or row["team_id"] != who.team_id):
            raise Forbidden("a manager retries only their team's deliveries", "role.team")
        if row["status"] != PARKED or not await run_in_threadpool(
            store.retry, delivery_id, clock()
        ):
            raise HTTPException(
                409,
                {
                    "error": "not_parked",
                    "message": f"only a parked delivery is retried; this one is {row['status']}",
                    "rule": "delivery.retry",
                    "status": row["status"],
                },
            )
        wake()
        again: dict[str, Any] | None = await run_in_threadpool(store.delivery, delivery_id)
        return _json(_delivery(again or row))

    return router


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "delivery_id",
        "reminder_id",
        "opportunity_id",
        "channel_id",
        "team_id",
        "kind",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    )
    return {key: row.get(key) for key in keys}


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")
