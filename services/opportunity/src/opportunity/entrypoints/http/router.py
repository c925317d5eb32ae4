"""The routes of the HTTP API, in the order the OpenAPI document lists them, and the probes."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header

from chassis.auth import Principal, bearer_principal
from chassis.http import probes
from opportunity.entrypoints.http.api import Api
from opportunity.entrypoints.http.commands import add_command_routes
from opportunity.entrypoints.http.customers import add_customer_routes
from opportunity.entrypoints.http.fastlane import IDEMPOTENCY_KEY_MAX
from opportunity.entrypoints.http.notifications import add_notification_routes
from opportunity.entrypoints.http.planning import add_planning_routes
from opportunity.entrypoints.http.pool import add_pool_routes
from opportunity.entrypoints.http.queries import add_query_routes
from opportunity.entrypoints.http.readiness import readiness


def build_router(api: Api) -> APIRouter:
    router = APIRouter()
    authenticate = bearer_principal(api.principal)
    Who = Annotated[Principal, Depends(authenticate)]
    IdempotencyKey = Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX)
    ]
    IfMatch = Annotated[str | None, Header(alias="If-Match")]
    add_command_routes(router, api, Who, IdempotencyKey, IfMatch)
    add_query_routes(router, api, authenticate)
    add_customer_routes(router, api, Who, IdempotencyKey, IfMatch)
    add_notification_routes(router, api, authenticate)
    add_pool_routes(router, api, authenticate)
    add_planning_routes(router, api, authenticate)
    router.include_router(probes(readiness(api.app, api.messaging), api.metrics.registry))
    return router
