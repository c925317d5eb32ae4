"""The customer routes (SPEC §8.1): one customer, the searchable list, and its key persons'
commands (add, change, remove), each mapped to one use case; `Api.customer_command` answers."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from chassis.http import Answer
from contracts.customer import Tier
from contracts.problems import refusals
from opportunity.adapters.listing import Visibility
from opportunity.entrypoints.http import bodies as body
from opportunity.entrypoints.http.api import Api
from opportunity.entrypoints.http.errors import InvalidParameter

KEY_PERSON = "/customers/{uscc}/key-persons/{person_id}"


def add_customer_routes(
    router: APIRouter, api: Api, who: Any, key_header: Any, if_match_header: Any
) -> None:
    """`who`, `key_header` and `if_match_header`: the annotated parameters the routes take."""
    app = api.app

    @router.get("/customers/{uscc}", tags=["customers"], responses=refusals(401, 403, 404, 503))
    async def get_customer(uscc: str, principal: who) -> Answer:
        found = await run_in_threadpool(api.customers.customer, uscc, principal)
        return Answer(found, headers={"ETag": f'"{found["version"]}"'})

    @router.get("/customers", tags=["customers"], responses=refusals(401, 503))
    async def search_customers(  # noqa: PLR0913 - the SPEC's filters and the page
        principal: who,
        name: Annotated[str | None, Query(max_length=200)] = None,
        tier: Tier | None = None,
        region: Annotated[str | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        for field, value in (("name", name), ("region", region)):
            if value is not None and "\x00" in value:
                # PostgreSQL text cannot hold NUL: no customer has it, and the query would fail.
                raise InvalidParameter(
                    field, f"{field} must not contain the NUL character", "query"
                )
        page = await run_in_threadpool(
            api.customer_listing.search,
            name,
            tier.value if tier else None,
            region,
            Visibility.of(principal),
            limit,
            offset,
        )
        return {"items": page.items, "total": page.total, "limit": limit, "offset": offset}

    @router.post(
        "/customers/{uscc}/key-persons",
        status_code=201,
        tags=["customers"],
        responses=refusals(400, 401, 403, 404, 412, 503),
    )
    async def add_key_person(  # noqa: PLR0913 - the path, the body and the headers
        request: Request,
        uscc: str,
        payload: body.CustomerKeyPersonBody,
        principal: who,
        key: key_header = None,
        if_match: if_match_header = None,
    ) -> Answer:
        ctx = api.context(principal, payload.occurred_at, if_match)
        person = payload.key_person()
        return await api.customer_command(
            "customer-key-persons",
            request,
            principal,
            key,
            payload,
            uscc,
            lambda uow: app.add_customer_key_person(uow, uscc, person, ctx),
            201,
        )

    @router.patch(KEY_PERSON, tags=["customers"], responses=refusals(400, 401, 403, 404, 412, 503))
    async def change_key_person(  # noqa: PLR0913 - the path, the body and the headers
        request: Request,
        uscc: str,
        person_id: str,
        payload: body.CustomerKeyPersonChanges,
        principal: who,
        key: key_header = None,
        if_match: if_match_header = None,
    ) -> Answer:
        ctx = api.context(principal, payload.occurred_at, if_match)
        # The fields the PATCH names; an explicit null clears one.
        fields = payload.model_dump(mode="json", exclude_unset=True, exclude={"occurred_at"})
        return await api.customer_command(
            "customer-key-persons.update",
            request,
            principal,
            key,
            payload,
            uscc,
            lambda uow: app.change_customer_key_person(uow, uscc, person_id, fields, ctx),
        )

    @router.delete(KEY_PERSON, tags=["customers"], responses=refusals(401, 403, 404, 412, 503))
    async def remove_key_person(  # noqa: PLR0913 - the path and the headers
        request: Request,
        uscc: str,
        person_id: str,
        principal: who,
        key: key_header = None,
        if_match: if_match_header = None,
    ) -> Answer:
        ctx = api.context(principal, None, if_match)
        return await api.customer_command(
            "customer-key-persons.remove",
            request,
            principal,
            key,
            body.Body(),
            uscc,
            lambda uow: app.remove_customer_key_person(uow, uscc, person_id, ctx),
        )
