"""HTTP routes (SPEC §4.1): request model → application command; domain error → status code."""

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from chassis.auth import Forbidden, Principal, Principals, bearer_principal
from chassis.http import Answer, probes
from contracts.opportunity import OpportunityType, Status
from contracts.problems import refusals
from contracts.rules import Pipeline, Role, Rulebook
from opportunity import requests as body
from opportunity.access import can_read, imports_history
from opportunity.application import (
    Answered,
    Conflict,
    Context,
    IdempotencyKey,
    NewOpportunity,
    NotFound,
    OpportunityApp,
    UnitOfWork,
    VersionMismatch,
)
from opportunity.domain import Opportunity
from opportunity.errors import (
    CommandNotAllowed,
    DomainError,
    DuplicateOpportunity,
    InvalidValue,
    OccurredAtRefused,
    RoleNotAllowed,
    StageRuleBroken,
)
from opportunity.fastlane import IDEMPOTENCY_KEY_MAX, fast_lane_route
from opportunity.groupcommit import GroupCommitter
from opportunity.listing import Listing, Visibility
from opportunity.messaging import Messaging
from opportunity.metrics import Metrics
from opportunity.readiness import readiness
from opportunity.translation import envelope_of
from opportunity.views import state_of, with_schedule

STATUS_OF: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (VersionMismatch, 412),
    (InvalidValue, 422),
    (OccurredAtRefused, 422),
    (RoleNotAllowed, 403),
    (CommandNotAllowed, 409),
    (StageRuleBroken, 409),
    (DuplicateOpportunity, 409),
    (Conflict, 409),
]

# Allow a little clock skew between a client importing history and this server.
FUTURE_TOLERANCE = timedelta(seconds=5)


def status_of(error: DomainError) -> int:
    return next((code for kind, code in STATUS_OF if isinstance(error, kind)), 409)


def error_body(error: DomainError) -> dict[str, Any]:
    field = error.facts.get("field")
    if field is not None:
        location = getattr(error, "location", "body")
        return {"detail": [{"loc": [location, field], "msg": error.message, "type": error.code}]}
    return {"detail": {"error": error.code, "message": error.message, **error.facts}}


def install_error_handlers(api: FastAPI) -> None:
    async def domain_error(_: Request, exc: Exception) -> Answer:
        error = cast(DomainError, exc)
        return Answer(error_body(error), status_code=status_of(error))

    async def http_error(_: Request, exc: Exception) -> Answer:
        """FastAPI's and Starlette's own refusals (a body that is no JSON text, an unknown
        path or method), named like the service's."""
        error = cast(HTTPException, exc)
        code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "_")
        return Answer(
            {"detail": {"error": code, "message": error.detail}},
            status_code=error.status_code,
            headers=error.headers,
        )

    api.add_exception_handler(DomainError, domain_error)
    api.add_exception_handler(HTTPException, http_error)


class Api:
    """Everything the routes need, wired once by the composition root."""

    def __init__(
        self,
        app: OpportunityApp,
        committer: GroupCommitter,
        listing: Listing,
        principals: Principals,
        zone: ZoneInfo,
        clock: Callable[[], datetime],
        metrics: Metrics,
        messaging: "Messaging | None" = None,
    ) -> None:
        self.app, self.committer, self.listing = app, committer, listing
        self.principals, self.zone, self.clock, self.metrics = principals, zone, clock, metrics
        self.messaging = messaging

    @property
    def rules(self) -> Rulebook:
        return self.app.rules

    def principal(self, token: str) -> Principal | None:
        """Who holds the bearer token, if anyone."""
        return self.principals.find(token)

    def render(self, opportunity: Opportunity) -> dict[str, Any]:
        return with_schedule(state_of(opportunity), self.rules, self.zone, self.clock())

    def context(
        self, principal: Principal, occurred_at: datetime | None, if_match: str | None
    ) -> Context:
        now = self.clock()
        if occurred_at is not None:
            if not imports_history(principal):
                raise Forbidden(
                    "only service and admin principals may pass occurred_at",
                    rule="role.occurred_at",
                )
            if occurred_at > now + FUTURE_TOLERANCE:
                raise OccurredAtRefused(f"occurred_at {occurred_at.isoformat()} is in the future")
        return Context(principal, now, occurred_at, _version(if_match))

    async def command(
        self,
        name: str,
        request: Request,
        principal: Principal,
        idempotency_key: str | None,
        payload: body.Body | None,
        work: Callable[[UnitOfWork], Opportunity],
        status_code: int = 200,
        touches: UUID | None = None,
    ) -> Answer:
        """Run a command once per Idempotency-Key and answer with the new state."""
        started = time.perf_counter()
        try:
            response = await self._command(
                request, principal, idempotency_key, payload, work, status_code, touches
            )
        except DomainError as exc:
            response = Answer(error_body(exc), status_code=status_of(exc))
        except Forbidden as exc:
            response = Answer({"detail": exc.detail}, status_code=403)
        self.metrics.commands.labels(name, str(response.status_code)).inc()
        self.metrics.command_seconds.labels(name).observe(time.perf_counter() - started)
        return response

    async def _command(
        self,
        request: Request,
        principal: Principal,
        key: str | None,
        payload: body.Body | None,
        work: Callable[[UnitOfWork], Opportunity],
        status_code: int,
        touches: UUID | None,
    ) -> Answer:
        idempotency = (
            IdempotencyKey(principal.id, key, _fingerprint(request, payload))
            if key is not None
            else None
        )

        def run(uow: UnitOfWork) -> Answered:
            if idempotency is None:
                return Answered(status_code, self.render(work(uow)))
            return self.app.answer_once(
                uow, idempotency, status_code, lambda: self.render(work(uow))
            )

        answered: Answered = await self.committer.submit(run, touches)
        headers = {"Idempotent-Replayed": "true"} if answered.replayed else None
        return Answer(answered.body, status_code=answered.status_code, headers=headers)


def _fingerprint(request: Request, payload: body.Body | None) -> str:
    content = payload.model_dump(mode="json") if payload is not None else None
    text = json.dumps([request.method, request.url.path, content], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    digits = if_match.strip().removeprefix("W/").strip('"')
    if not digits.isdigit():
        raise InvalidValue(
            "If-Match", "If-Match is the opportunity version, e.g. If-Match: 3", location="header"
        )
    return int(digits)


def _uuid(opportunity_id: str) -> UUID:
    try:
        return UUID(opportunity_id)
    except ValueError:
        raise NotFound(f"no opportunity {opportunity_id}", id=opportunity_id) from None


Change = Callable[[Api, Opportunity, Any, Principal, datetime], None]


def _pipeline(api: Api, o: Opportunity) -> Pipeline:
    return api.rules.pipeline(o.pipeline_id)


def _changes(payload: body.UpdateBody) -> dict[str, str | None]:
    """The fields a PATCH names (explicit null clears), as the text InfoUpdated carries."""
    fields = payload.model_dump(mode="json", exclude_unset=True, exclude={"occurred_at"})
    return {name: None if value is None else str(value) for name, value in fields.items()}


def _assign(api: Api, o: Opportunity, b: body.AssignBody, who: Principal, at: datetime) -> None:
    """A known owner brings the opportunity into the owner's team; a manager assigns only
    within the own team, admins and services across teams."""
    owner = api.principals.by_id(b.owner_id)
    team = owner.team_id if owner is not None else None
    if team is not None and team != o.team_id and who.role is Role.MANAGER:
        raise Forbidden(
            f"{b.owner_id} works in team {team!r}; a manager assigns within the own team",
            rule="role.team",
        )
    o.assign(b.owner_id, at, who.id, team_id=team)


# (command, body, what it does, body optional): one route each, POST /opportunities/{id}/{command}
# except `update`, which is PATCH /opportunities/{id}.
COMMANDS: list[tuple[str, type[body.Body], Change, bool]] = [
    (
        "advance",
        body.AdvanceBody,
        lambda api, o, b, who, at: o.advance(_pipeline(api, o), b.to_stage, who.role, at, who.id),
        False,
    ),
    (
        "revert",
        body.RevertBody,
        lambda api, o, b, who, at: o.revert(
            _pipeline(api, o), b.to_stage, b.reason, who.role, at, who.id
        ),
        False,
    ),
    (
        "follow-ups",
        body.FollowUpBody,
        lambda api, o, b, who, at: o.log_follow_up(b.kind, b.note, at, who.id),
        False,
    ),
    (
        "pause",
        body.PauseBody,
        lambda api, o, b, who, at: o.pause(b.reason, b.until, at, who.id),
        False,
    ),
    ("resume", body.ClaimBody, lambda api, o, b, who, at: o.resume(at, who.id), True),
    (
        "defer",
        body.DeferBody,
        lambda api, o, b, who, at: o.defer(b.reason, b.revisit_on, at, who.id),
        False,
    ),
    ("reactivate", body.ClaimBody, lambda api, o, b, who, at: o.reactivate(at, who.id), True),
    (
        "reclaim",
        body.ReasonBody,
        lambda api, o, b, who, at: o.reclaim(b.reason, None, None, at, who.id),
        False,
    ),
    ("assign", body.AssignBody, lambda api, o, b, who, at: _assign(api, o, b, who, at), False),
    ("claim", body.ClaimBody, lambda api, o, b, who, at: o.claim(who.id, at, who.id), True),
    (
        "win",
        body.WinBody,
        lambda api, o, b, who, at: o.win(
            _pipeline(api, o),
            b.amount,
            b.contract_ref,
            b.contract_start_on,
            b.contract_end_on,
            at,
            who.id,
        ),
        False,
    ),
    (
        "lose",
        body.LoseBody,
        lambda api, o, b, who, at: o.lose(api.rules, b.reason, b.competitor, at, who.id),
        False,
    ),
    ("void", body.ReasonBody, lambda api, o, b, who, at: o.void(b.reason, at, who.id), False),
    (
        "update",
        body.UpdateBody,
        lambda api, o, b, who, at: o.update_info(_changes(b), at, who.id),
        False,
    ),
    (
        "key-persons",
        body.KeyPersonBody,
        lambda api, o, b, who, at: o.add_key_person(
            _with_id("person_id", o.key_persons, b), at, who.id
        ),
        False,
    ),
    (
        "competitors",
        body.CompetitorBody,
        lambda api, o, b, who, at: o.record_competitor(
            _with_id("competitor_id", o.competitors, b), at, who.id
        ),
        False,
    ),
    (
        "documents",
        body.DocumentBody,
        lambda api, o, b, who, at: o.attach_document(
            _with_id("document_id", o.documents, b), at, who.id
        ),
        False,
    ),
]


def _add_command_route(  # noqa: PLR0913
    router: APIRouter,
    api: Api,
    name: str,
    model: type[body.Body],
    change: Change,
    optional: bool,
    who_dependency: Any,
    key_header: Any,
    if_match_header: Any,
) -> None:
    # A command that needs nothing more than its name may come without a body.
    payload_type: Any = Annotated[model, Body(default_factory=model) if optional else Body()]

    async def run(
        request: Request,
        who: Principal,
        payload: body.Body,
        key: str | None,
        if_match: str | None,
        opportunity_id: str,
    ) -> Answer:
        ctx = api.context(who, payload.occurred_at, if_match)
        oid = _uuid(opportunity_id)
        return await api.command(
            name,
            request,
            who,
            key,
            payload,
            lambda uow: api.app.act(
                uow, oid, name, ctx, lambda o, at: change(api, o, payload, who, at)
            ),
            touches=oid,
        )

    async def command(
        request: Request,
        opportunity_id: str,
        who: who_dependency,
        payload: payload_type,
        key: key_header = None,
        if_match: if_match_header = None,
    ) -> Answer:
        return await run(request, who, payload, key, if_match, opportunity_id)

    command.__name__ = name.replace("-", "_")
    update = name == "update"
    router.add_api_route(
        "/opportunities/{opportunity_id}"
        if update
        else f"/opportunities/{{opportunity_id}}/{name}",
        command,
        methods=["PATCH" if update else "POST"],
        tags=["commands"],
        summary="update info" if update else name,
        responses=refusals(400, 401, 403, 404, 409, 412, 503),
        route_class_override=fast_lane_route(model, optional, api.principal, run),
    )


def build_router(api: Api) -> APIRouter:  # noqa: C901 - one route per SPEC endpoint
    router = APIRouter()
    authenticate = bearer_principal(api.principal)
    Who = Annotated[Principal, Depends(authenticate)]
    IdempotencyKey = Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX)
    ]
    IfMatch = Annotated[str | None, Header(alias="If-Match")]

    def readable(principal: Principal, opportunity: Opportunity) -> Opportunity:
        if not can_read(principal, opportunity.owner_id, opportunity.team_id, opportunity.status):
            raise Forbidden("this opportunity is not yours to see", rule="role.read")
        return opportunity

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
        new = NewOpportunity(
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
            "create", request, who, key, payload, lambda uow: api.app.create(uow, new, ctx), 201
        )

    async def create(
        request: Request, payload: body.CreateBody, who: Who, key: IdempotencyKey = None
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

    for name, model, change, optional in COMMANDS:
        _add_command_route(router, api, name, model, change, optional, Who, IdempotencyKey, IfMatch)

    @router.get(
        "/opportunities/{opportunity_id}", tags=["queries"], responses=refusals(401, 403, 404, 503)
    )
    async def get_one(opportunity_id: str, who: Who) -> Answer:
        found = await run_in_threadpool(api.app.opportunity, _uuid(opportunity_id))
        return Answer(api.render(readable(who, found)), headers={"ETag": f'"{found.version}"'})

    @router.get(
        "/opportunities/{opportunity_id}/history",
        tags=["queries"],
        responses=refusals(401, 403, 404, 503),
    )
    async def history(opportunity_id: str, who: Who) -> dict[str, Any]:
        oid = _uuid(opportunity_id)
        readable(who, await run_in_threadpool(api.app.opportunity, oid))
        events = await run_in_threadpool(api.app.history, oid)
        return {"opportunity_id": str(oid), "events": [envelope_of(e) for e in events]}

    @router.get("/opportunities", tags=["queries"], responses=refusals(401, 503))
    async def search(
        who: Who,
        owner_id: str | None = None,
        team_id: str | None = None,
        status: Status | None = None,
        stage: str | None = None,
        type: OpportunityType | None = None,  # noqa: A002 - the SPEC's parameter name
        uscc: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        if who.role is Role.REP:
            visibility = Visibility(team_id=who.team_id, owner_id=who.id)
        elif who.role is Role.MANAGER:
            visibility = Visibility(team_id=who.team_id)
        else:
            visibility = Visibility()
        filters = {
            "owner_id": owner_id,
            "team_id": team_id,
            "status": status.value if status else None,
            "stage": stage,
            "type": type.value if type else None,
            "uscc": uscc,
        }
        for name, value in filters.items():
            if value is not None and "\x00" in value:
                # PostgreSQL text cannot hold NUL: no opportunity has it, and the query would fail.
                raise InvalidValue(
                    name, f"{name} must not contain the NUL character", location="query"
                )
        page = await run_in_threadpool(api.listing.search, filters, visibility, limit, offset)
        now = api.clock()
        items = [with_schedule(item, api.rules, api.zone, now) for item in page.items]
        return {"items": items, "total": page.total, "limit": limit, "offset": offset}

    @router.get(
        "/pipelines",
        tags=["queries"],
        dependencies=[Depends(authenticate)],
        responses=refusals(401),
    )
    async def pipelines() -> dict[str, Any]:
        return {
            "version": api.rules.version,
            "pipelines": [
                {
                    "id": p.id,
                    "type": p.type.value,
                    "tier": p.tier.value if p.tier else None,
                    "stages": [
                        {
                            "id": s.id,
                            "label": f"{s.label.zh} {s.label.en}",
                            "labels": {"zh": s.label.zh, "en": s.label.en},
                            "probability": s.probability,
                            "forecast_category": s.forecast_category.value,
                            "guidance": s.guidance,
                            "skippable": s.skippable,
                            "allow_back": s.allow_back,
                            "roles": [r.value for r in s.roles],
                            "can_win": s.can_win or s.id == p.stage_ids[-1],
                        }
                        for s in p.stages
                    ],
                }
                for p in api.rules.pipelines
            ],
            "lost_reasons": [
                {"id": r.id, "label": f"{r.label.zh} {r.label.en}", "labels": r.label.model_dump()}
                for r in api.rules.lost_reasons
            ],
        }

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
                for notification in api.app.opportunity_notifications(after, limit)
            ]

        items = await run_in_threadpool(read)
        return {
            "after": after,
            "items": items,
            "next_after": items[-1]["position"] if items else after,
        }

    router.include_router(probes(readiness(api.app, api.messaging), api.metrics.registry))
    return router


def _with_id(id_field: str, existing: list[dict[str, Any]], payload: body.Body) -> dict[str, Any]:
    """A key person, competitor or document with a short id, numbered within the opportunity."""
    return {
        id_field: str(len(existing) + 1),
        **payload.model_dump(mode="json", exclude={"occurred_at"}),
    }
