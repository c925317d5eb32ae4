"""HTTP routes (SPEC §4.2): filters and the principal's reach → a report; errors name the field."""

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from datetime import time as clock_time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi import Query as Param
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from chassis.auth import Forbidden, Principal, Principals, bearer_principal
from chassis.http import KAFKA_NOT_CONFIGURED, Answer, BoundedCheck, probes
from contracts.customer import Ownership, Tier
from contracts.opportunity import OpportunityType
from contracts.problems import refusals
from contracts.rules import Role
from contracts.targets import TargetMetric, TargetScope, parse_period
from projections.adapters.migrate import current_revision
from projections.adapters.tally_tables import missing_reason
from projections.application.plans import PlanReports, UnknownCompetition, Viewer
from projections.application.read_model import Query
from projections.application.reports import Reports
from projections.domain.periods import PERIODS
from projections.entrypoints.instruments import Instruments
from projections.entrypoints.messaging import Messaging


def invalid(field: str, message: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own: {"detail": [{"loc": ["query", field], …}]}."""
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error", "input": None}]
    )


def parse_instant(text: str | None, field: str, zone: ZoneInfo) -> datetime | None:
    """A date (midnight in the business time zone) or an instant (RFC 3339; without an
    offset it is read in the business time zone)."""
    if text is None or text == "":
        return None
    # A '+' left unencoded in a query string arrives as a space.
    candidate = text.strip().replace(" ", "+") if "T" in text else text.strip()
    try:
        if len(candidate) == 10:
            return datetime.combine(date.fromisoformat(candidate), clock_time.min, tzinfo=zone)
        found = datetime.fromisoformat(candidate)
    except ValueError:
        raise invalid(
            field,
            f"{field} is neither a date (2026-11-01) nor an instant (2026-11-01T09:00:00+08:00)",
        ) from None
    return found.replace(tzinfo=zone) if found.tzinfo is None else found


def scoped(who: Principal, q: Query) -> Query:
    """SPEC §4.4: viewer, admin and service read everything; a manager the own team; a rep
    the own opportunities."""
    if who.role in (Role.VIEWER, Role.ADMIN, Role.SERVICE):
        return q
    if who.role is Role.MANAGER:
        if who.team_id is None:
            raise Forbidden("a manager without a team reads no team", "role.team", "team_id")
        if q.team_id not in (None, who.team_id):
            raise Forbidden(
                f"a manager reads the own team ({who.team_id!r}), not another",
                "role.team",
                "team_id",
            )
        return replace(q, scope_team_id=who.team_id)
    if q.owner_id not in (None, who.id):
        raise Forbidden(
            f"a rep reads the own opportunities ({who.id!r}), not another's",
            "role.owner",
            "owner_id",
        )
    if q.team_id not in (None, who.team_id):
        raise Forbidden(
            f"a rep reads the own team ({who.team_id!r}), not another", "role.team", "team_id"
        )
    return replace(q, scope_owner_id=who.id)


def viewer_of(who: Principal) -> Viewer:
    """Whose attainment a principal reads (SPEC §4.4)."""
    if who.role in (Role.VIEWER, Role.ADMIN, Role.SERVICE):
        return Viewer()
    if who.role is Role.MANAGER:
        return Viewer(everyone=False, team_id=who.team_id)
    return Viewer(everyone=False, rep_id=who.id, team_id=who.team_id)


class Api:
    """Everything the routes need, wired once by the composition root."""

    def __init__(
        self,
        reports: Reports,
        plans: PlanReports,
        engine: sa.Engine,
        principals: Principals,
        zone: ZoneInfo,
        clock: Callable[[], datetime],
        metrics: Instruments,
        messaging: Messaging | None = None,
    ) -> None:
        self.reports, self.plans, self.engine, self.principals = reports, plans, engine, principals
        self.zone, self.clock, self.metrics, self.messaging = zone, clock, metrics, messaging

    def principal(self, token: str) -> Principal | None:
        """Who holds the bearer token, if anyone."""
        return self.principals.find(token)

    async def timed(self, name: str, work: Callable[[], dict[str, Any]]) -> Answer:
        started = time.perf_counter()
        try:
            return Answer(await run_in_threadpool(work))
        finally:
            self.metrics.report_seconds.labels(name).observe(time.perf_counter() - started)


def build_router(api: Api) -> APIRouter:  # noqa: C901 - one route per SPEC endpoint
    router = APIRouter()
    Who = Annotated[Principal, Depends(bearer_principal(api.principal))]

    def filters(
        who: Who,
        type: OpportunityType | None = None,  # noqa: A002 - the SPEC's parameter name
        tier: Tier | None = None,
        ownership: Ownership | None = None,
        classified_by: Annotated[
            str | None,
            Param(
                max_length=100,
                description="the classification rule that gave the tier, or `manual`",
            ),
        ] = None,
        owner_id: Annotated[str | None, Param(max_length=100)] = None,
        team_id: Annotated[str | None, Param(max_length=100)] = None,
        created_from: Annotated[str | None, Param(alias="from")] = None,
        created_to: Annotated[str | None, Param(alias="to")] = None,
        as_of: str | None = None,
        include_voided: bool = False,
    ) -> Query:
        for name, value in (
            ("classified_by", classified_by),
            ("owner_id", owner_id),
            ("team_id", team_id),
        ):
            if value is not None and "\x00" in value:
                # PostgreSQL text cannot hold NUL: no opportunity has it, and the query would fail.
                raise invalid(name, f"{name} must not contain the NUL character")
        start = parse_instant(created_from, "from", api.zone)
        end = parse_instant(created_to, "to", api.zone)
        if start is not None and end is not None and end <= start:
            raise invalid("to", "`to` (exclusive) must be after `from` (inclusive)")
        q = Query(
            type=type.value if type else None,
            tier=tier.value if tier else None,
            ownership=ownership.value if ownership else None,
            classified_by=classified_by,
            owner_id=owner_id,
            team_id=team_id,
            created_from=start,
            created_to=end,
            as_of=parse_instant(as_of, "as_of", api.zone),
            include_voided=include_voided,
        )
        return scoped(who, q)

    Filters = Annotated[Query, Depends(filters)]
    refused = refusals(401, 403, 503)

    @router.get("/funnel", tags=["reports"], responses=refused)
    async def funnel(q: Filters) -> Answer:
        return await api.timed("funnel", lambda: api.reports.funnel(q, api.clock()))

    @router.get("/dwell", tags=["reports"], responses=refused)
    async def dwell(q: Filters) -> Answer:
        return await api.timed("dwell", lambda: api.reports.dwell(q, api.clock()))

    @router.get("/win-rates", tags=["reports"], responses=refused)
    async def win_rates(q: Filters) -> Answer:
        return await api.timed("win_rates", lambda: api.reports.win_rates(q, api.clock()))

    @router.get("/forecast", tags=["reports"], responses=refused)
    async def forecast(q: Filters) -> Answer:
        return await api.timed("forecast", lambda: api.reports.forecast(q, api.clock()))

    @router.get("/stale", tags=["reports"], responses=refused)
    async def stale(
        q: Filters,
        limit: Annotated[int, Param(ge=1, le=1000)] = 50,
        offset: Annotated[int, Param(ge=0)] = 0,
    ) -> Answer:
        return await api.timed("stale", lambda: api.reports.stale(q, api.clock(), limit, offset))

    @router.get("/leaderboard", tags=["reports"], responses=refused)
    async def leaderboard(
        q: Filters,
        period: str = "month",
        won_from: str | None = None,
        won_to: str | None = None,
    ) -> Answer:
        if period not in PERIODS:
            raise invalid("period", f"period is one of {list(PERIODS)}")
        start = parse_instant(won_from, "won_from", api.zone)
        end = parse_instant(won_to, "won_to", api.zone)
        if start is not None and end is not None and end <= start:
            raise invalid("won_to", "`won_to` (exclusive) must be after `won_from` (inclusive)")
        return await api.timed(
            "leaderboard",
            lambda: api.reports.leaderboard(q, api.clock(), period, start, end),
        )

    @router.get("/attainment", tags=["targets"], responses=refused)
    async def attainment(
        who: Who,
        period: str | None = None,
        scope: TargetScope | None = None,
        scope_id: Annotated[str | None, Param(max_length=100)] = None,
        metric: TargetMetric | None = None,
        as_of: str | None = None,
    ) -> Answer:
        if not period:
            raise invalid("period", "period is required: YYYY, YYYY-Qn or YYYY-MM")
        try:
            parsed = parse_period(period)
        except ValueError as exc:
            raise invalid("period", str(exc)) from None
        at = parse_instant(as_of, "as_of", api.zone)
        return await api.timed(
            "attainment",
            lambda: api.plans.attainment(
                parsed,
                api.clock(),
                viewer_of(who),
                scope=scope.value if scope else None,
                scope_id=scope_id,
                metric=metric.value if metric else None,
                as_of=at,
            ),
        )

    @router.get("/competitions", tags=["targets"], responses=refused)
    async def competitions(_: Who) -> Answer:
        """Every competition's latest definition, the newest defined first."""
        return await api.timed("competitions", api.plans.competitions)

    @router.get(
        "/competitions/{competition_id}/standings",
        tags=["targets"],
        responses=refusals(401, 403, 404, 503),
    )
    async def standings(
        _: Who, competition_id: Annotated[str, Path(max_length=64)], as_of: str | None = None
    ) -> Answer:
        at = parse_instant(as_of, "as_of", api.zone)
        try:
            return await api.timed(
                "standings", lambda: api.plans.standings(competition_id, api.clock(), at)
            )
        except UnknownCompetition:
            raise HTTPException(
                404,
                {"error": "not_found", "message": f"no competition {competition_id!r}"},
            ) from None

    @router.get("/deferrals", tags=["reports"], responses=refused)
    async def deferrals(q: Filters) -> Answer:
        """Deferral episodes begun in [from, to) (not a creation window here), by reason."""
        start, end = q.created_from, q.created_to
        window = replace(q, created_from=None, created_to=None)
        return await api.timed(
            "deferrals", lambda: api.plans.deferrals(window, api.clock(), start, end)
        )

    schema = BoundedCheck(lambda: (current_revision(api.engine), missing_reason(api.engine)))

    async def database() -> dict[str, Any]:
        """The schema, and whether the tallies answer the reports (else, slower, the tables)."""
        try:
            revision, missing = await schema()
            tallies = "ok" if missing is None else f"missing: {missing}"
            return {"schema": revision, "tallies": tallies, "database": "ok"}
        except Exception as exc:  # any database failure means not ready
            return {"database": f"unavailable: {type(exc).__name__}"}

    async def kafka() -> dict[str, Any]:
        return (
            {"kafka": KAFKA_NOT_CONFIGURED}
            if api.messaging is None
            else await api.messaging.status()
        )

    async def readiness() -> tuple[bool, dict[str, Any]]:
        """Ready once the database answers at the newest schema and, with Kafka configured,
        the broker answers and the consumer joined its group; else 503, `down` naming which
        of the database and the broker does not answer (within a second)."""
        answers, broker = await asyncio.gather(database(), kafka())
        detail = {**answers, **broker}
        down = [
            name
            for name, answering in (
                ("projections database", detail["database"] == "ok"),
                ("broker", detail.get("broker", "connected") == "connected"),
            )
            if not answering
        ]
        joined = api.messaging is None or detail.get("consumer") == "joined"
        return not down and joined, {**detail, "down": down}

    router.include_router(probes(readiness, api.metrics.registry))
    return router
