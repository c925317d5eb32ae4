"""The command routes (SPEC §4.1): each maps its request body to one use case of the
application; `Api.command` answers. POST /opportunities/{id}/{command}, PATCH for `update`."""

from collections.abc import Callable
from typing import Annotated, Any, Generic, NamedTuple, TypeVar
from uuid import UUID

from fastapi import APIRouter, Body, Request

from chassis.auth import Principal
from chassis.http import Answer
from contracts.problems import refusals
from contracts.rules import Role
from opportunity.application.app import OpportunityApp
from opportunity.application.creating import GivenOpportunity
from opportunity.application.unit_of_work import Context, UnitOfWork
from opportunity.domain.opportunity import Opportunity
from opportunity.entrypoints.http import bodies as body
from opportunity.entrypoints.http.api import Api, opportunity_uuid
from opportunity.entrypoints.http.fastlane import fast_lane_route

BodyT = TypeVar("BodyT", bound=body.Body)


class CommandRoute(NamedTuple, Generic[BodyT]):
    """A command as the API names it, its body, the use case it gives, and whether the body
    may be left out (a command that needs nothing more than its name)."""

    name: str
    model: type[BodyT]
    use: Callable[[OpportunityApp, UnitOfWork, UUID, BodyT, Context], Opportunity]
    optional: bool = False


def _route(
    name: str,
    model: type[BodyT],
    use: Callable[[OpportunityApp, UnitOfWork, UUID, BodyT, Context], Opportunity],
    optional: bool = False,
) -> "CommandRoute[Any]":
    """A command route whose use is checked against its own body model (a list of
    `CommandRoute[Any]` would give each use an untyped body)."""
    return CommandRoute(name, model, use, optional)


def _fields(payload: body.Body, *, exclude_unset: bool = False) -> dict[str, Any]:
    """The body's fields as JSON values, `occurred_at` aside (it is the command's time)."""
    return payload.model_dump(mode="json", exclude_unset=exclude_unset, exclude={"occurred_at"})


COMMANDS: list[CommandRoute[Any]] = [
    _route(
        "advance",
        body.AdvanceBody,
        lambda app, uow, oid, b, ctx: app.advance(uow, oid, b.to_stage, ctx),
    ),
    _route(
        "revert",
        body.RevertBody,
        lambda app, uow, oid, b, ctx: app.revert(uow, oid, b.to_stage, b.reason, ctx),
    ),
    _route(
        "follow-ups",
        body.FollowUpBody,
        lambda app, uow, oid, b, ctx: app.log_follow_up(uow, oid, b.kind, b.note, ctx),
    ),
    _route(
        "pause",
        body.PauseBody,
        lambda app, uow, oid, b, ctx: app.pause(uow, oid, b.reason, b.until, ctx),
    ),
    _route(
        "resume",
        body.ClaimBody,
        lambda app, uow, oid, b, ctx: app.resume(uow, oid, ctx),
        optional=True,
    ),
    _route(
        "defer",
        body.DeferBody,
        lambda app, uow, oid, b, ctx: app.defer(uow, oid, b.reason, b.revisit_on, ctx, b.note),
    ),
    _route(
        "reactivate",
        body.ClaimBody,
        lambda app, uow, oid, b, ctx: app.reactivate(uow, oid, ctx),
        optional=True,
    ),
    _route(
        "reclaim",
        body.ReasonBody,
        lambda app, uow, oid, b, ctx: app.reclaim(uow, oid, b.reason, ctx),
    ),
    _route(
        "assign",
        body.AssignBody,
        lambda app, uow, oid, b, ctx: app.assign(uow, oid, b.owner_id, ctx, b.override),
    ),
    _route(
        "claim",
        body.ClaimBody,
        lambda app, uow, oid, b, ctx: app.claim(uow, oid, ctx),
        optional=True,
    ),
    _route(
        "win",
        body.WinBody,
        lambda app, uow, oid, b, ctx: app.win(
            uow, oid, b.amount, b.contract_ref, b.contract_start_on, b.contract_end_on, ctx
        ),
    ),
    _route(
        "lose",
        body.LoseBody,
        lambda app, uow, oid, b, ctx: app.lose(uow, oid, b.reason, b.competitor, ctx),
    ),
    _route(
        "void",
        body.ReasonBody,
        lambda app, uow, oid, b, ctx: app.void(uow, oid, b.reason, ctx),
    ),
    _route(
        "update",
        body.UpdateBody,
        # The fields a PATCH names; an explicit null clears one.
        lambda app, uow, oid, b, ctx: app.update_info(
            uow, oid, _fields(b, exclude_unset=True), ctx
        ),
    ),
    _route(
        "key-persons",
        body.KeyPersonBody,
        lambda app, uow, oid, b, ctx: app.add_key_person(uow, oid, _fields(b), ctx),
    ),
    _route(
        "competitors",
        body.CompetitorBody,
        lambda app, uow, oid, b, ctx: app.record_competitor(uow, oid, _fields(b), ctx),
    ),
    _route(
        "documents",
        body.DocumentBody,
        lambda app, uow, oid, b, ctx: app.attach_document(uow, oid, _fields(b), ctx),
    ),
]


def add_command_routes(
    router: APIRouter, api: Api, who: Any, key_header: Any, if_match_header: Any
) -> None:
    """POST /opportunities and one route per command; `who`, `key_header` and
    `if_match_header` are the annotated parameters FastAPI solves on its own lane."""
    _add_create_route(router, api, who, key_header)
    for command in COMMANDS:
        _add_command_route(router, api, command, who, key_header, if_match_header)


def _add_create_route(router: APIRouter, api: Api, who_dependency: Any, key_header: Any) -> None:
    async def run_create(
        request: Request,
        who: Principal,
        payload: body.CreateBody,
        key: str | None,
        _if_match: str | None,
    ) -> Answer:
        ctx = api.context(who, payload.occurred_at, None)
        owner = (
            payload.owner_id if payload.owner_id is not None or who.role is not Role.REP else who.id
        )
        team = payload.team_id if payload.team_id is not None else who.team_id
        given = GivenOpportunity(
            type=payload.type,
            customer=payload.customer,
            owner_id=owner,
            team_id=team,
            title=payload.title,
            amount=payload.amount,
            currency=payload.currency,
            expected_close_on=payload.expected_close_on,
            source=payload.source,
        )
        return await api.command(
            "create",
            request,
            who,
            key,
            payload,
            lambda uow: api.app.create_given(uow, given, ctx),
            201,
        )

    async def create(
        request: Request, payload: body.CreateBody, who: who_dependency, key: key_header = None
    ) -> Answer:
        return await run_create(request, who, payload, key, None)

    router.add_api_route(
        "/opportunities",
        create,
        methods=["POST"],
        status_code=201,
        tags=["opportunities"],
        responses=refusals(400, 401, 403, 409, 503),
        route_class_override=fast_lane_route(body.CreateBody, False, api.principal, run_create),
    )


def _add_command_route(
    router: APIRouter,
    api: Api,
    command: CommandRoute[Any],
    who_dependency: Any,
    key_header: Any,
    if_match_header: Any,
) -> None:
    name, model, use, optional = command
    payload_type: Any = Annotated[model, Body(default_factory=model) if optional else Body()]
    app = api.app

    async def run(
        request: Request,
        who: Principal,
        payload: body.Body,
        key: str | None,
        if_match: str | None,
        opportunity_id: str,
    ) -> Answer:
        ctx = api.context(who, payload.occurred_at, if_match)
        oid = opportunity_uuid(opportunity_id)
        return await api.command(
            name,
            request,
            who,
            key,
            payload,
            lambda uow: use(app, uow, oid, payload, ctx),
            touches=oid,
        )

    async def endpoint(
        request: Request,
        opportunity_id: str,
        who: who_dependency,
        payload: payload_type,
        key: key_header = None,
        if_match: if_match_header = None,
    ) -> Answer:
        return await run(request, who, payload, key, if_match, opportunity_id)

    endpoint.__name__ = name.replace("-", "_")
    update = name == "update"
    router.add_api_route(
        "/opportunities/{opportunity_id}"
        if update
        else f"/opportunities/{{opportunity_id}}/{name}",
        endpoint,
        methods=["PATCH" if update else "POST"],
        tags=["commands"],
        summary="update info" if update else name,
        responses=refusals(400, 401, 403, 404, 409, 412, 503),
        route_class_override=fast_lane_route(model, optional, api.principal, run),
    )
