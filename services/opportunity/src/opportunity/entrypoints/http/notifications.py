"""The notification feed (SPEC §4.1): the event history in recording order, as envelopes (the
opportunities' and the customer records', as on the events topic), for rebuilds and catch-up;
service and admin principals only."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from chassis.auth import Forbidden, Principal
from contracts.problems import refusals
from contracts.rules import Role
from opportunity.adapters.translation import envelope_of
from opportunity.entrypoints.http.api import Api, Authenticate


def add_notification_routes(router: APIRouter, api: Api, authenticate: Authenticate) -> None:
    Who = Annotated[Principal, Depends(authenticate)]

    @router.get("/notifications", tags=["queries"], responses=refusals(401, 403, 503))
    async def notifications(
        who: Who,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        if who.role not in (Role.SERVICE, Role.ADMIN):
            raise Forbidden(
                "the notification feed is for service and admin principals",
                rule="role.notifications",
            )

        def read() -> list[dict[str, Any]]:
            return [
                {"position": notification.id, "envelope": envelope_of(notification)}
                for notification in api.app.notifications(after, limit)
            ]

        items = await run_in_threadpool(read)
        return {
            "after": after,
            "items": items,
            "next_after": items[-1]["position"] if items else after,
        }
