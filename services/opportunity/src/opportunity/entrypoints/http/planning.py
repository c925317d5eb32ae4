"""The target and competition routes (SPEC §9): set and read targets, define and read
competitions, each mapped to one use case or query; `Api.record` answers a command."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, Field
from starlette.concurrency import run_in_threadpool

from chassis.auth import Principal
from chassis.http import Answer
from contracts.competitions import CompetitionId, CompetitionMetric
from contracts.customer import Tier
from contracts.opportunity import OpportunityType
from contracts.problems import refusals
from contracts.targets import (
    ScopeId,
    TargetMetric,
    TargetReason,
    TargetScope,
    TargetValue,
    parse_period,
)
from opportunity.application.competitions import GivenCompetition
from opportunity.domain.errors import InvalidValue
from opportunity.domain.target import TargetKey
from opportunity.entrypoints.http.api import Api, Authenticate
from opportunity.entrypoints.http.bodies import Body
from opportunity.entrypoints.http.errors import InvalidParameter

T = TypeVar("T")
Instant = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        description="a date (midnight, business time zone) or an RFC 3339 instant",
    ),
]


class TargetBody(Body):
    metric: TargetMetric
    value: TargetValue
    reason: TargetReason | None = None


class CompetitionBody(Body):
    id: CompetitionId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    metric: CompetitionMetric
    from_: Instant = Field(alias="from")
    to: Instant
    team_ids: tuple[ScopeId, ...] = Field(
        default=(), description="none: a manager's own team; an admin's: every team"
    )
    tiers: tuple[Tier, ...] = ()
    types: tuple[OpportunityType, ...] = ()


def add_planning_routes(router: APIRouter, api: Api, authenticate: Authenticate) -> None:
    Who = Annotated[Principal, Depends(authenticate)]

    @router.put(
        "/targets/{period}/{scope}/{scope_id}",
        tags=["targets"],
        status_code=200,
        responses={
            201: {"description": "the target was created"},
            **refusals(400, 401, 403, 503),
        },
    )
    async def set_target(
        period: str,
        scope: TargetScope,
        scope_id: Annotated[str, Path(min_length=1, max_length=100)],
        payload: TargetBody,
        who: Who,
    ) -> Answer:
        key = _in_path(lambda: TargetKey(period, scope, scope_id, payload.metric.value))
        # The path's refusals (a rep or team nobody is) named where they are, before the body's.
        _in_path(lambda: api.targets.team_of(who, key))
        ctx = api.context(who, payload.occurred_at, None)
        return await api.record(
            "targets.set",
            lambda uow: api.targets.set_target(uow, key, payload.value, payload.reason, ctx),
        )

    @router.get("/targets", tags=["targets"], responses=refusals(401, 503))
    async def read_targets(
        who: Who,
        period: Annotated[str | None, Query(max_length=10)] = None,
        scope: TargetScope | None = None,
        as_of: AwareDatetime | None = None,
    ) -> dict[str, Any]:
        if period is not None:
            try:
                parse_period(period)
            except ValueError as refused:
                raise InvalidParameter("period", str(refused), "query") from None
        instant: datetime = as_of or api.clock()
        found: dict[str, Any] = await run_in_threadpool(
            api.targets.targets, period, scope.value if scope else None, instant, who
        )
        return found

    @router.post(
        "/competitions",
        tags=["competitions"],
        status_code=201,
        responses={
            200: {"description": "defined so before"},
            **refusals(400, 401, 403, 409, 503),
        },
    )
    async def define_competition(payload: CompetitionBody, who: Who) -> Answer:
        given = GivenCompetition(
            competition_id=payload.id,
            name=payload.name,
            metric=payload.metric.value,
            starts=payload.from_,
            ends=payload.to,
            team_ids=payload.team_ids,
            tiers=tuple(t.value for t in payload.tiers),
            types=tuple(t.value for t in payload.types),
        )
        ctx = api.context(who, payload.occurred_at, None)
        return await api.record(
            "competitions.define", lambda uow: api.competitions.define(uow, given, ctx)
        )

    @router.get("/competitions", tags=["competitions"], responses=refusals(401, 503))
    async def list_competitions(_: Who) -> dict[str, Any]:
        found: dict[str, Any] = await run_in_threadpool(api.competitions.competitions)
        return found

    @router.get(
        "/competitions/{competition_id}",
        tags=["competitions"],
        responses=refusals(401, 404, 503),
    )
    async def one_competition(competition_id: str, _: Who) -> dict[str, Any]:
        found: dict[str, Any] = await run_in_threadpool(
            api.competitions.competition, competition_id
        )
        return found


def _in_path(check: Callable[[], T]) -> T:
    """What `check` gives; a value it refuses is named as a path parameter."""
    try:
        return check()
    except InvalidValue as refused:
        raise InvalidParameter(refused.field, refused.message, "path") from None
