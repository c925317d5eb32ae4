"""The query routes (SPEC §4.1): who the caller is, one opportunity, its history, the searchable
list, the pipelines of the rules file (with its lost and deferral reasons)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from chassis.auth import Forbidden, Principal
from chassis.http import Answer
from contracts.opportunity import OpportunityType, Status
from contracts.problems import refusals
from opportunity.adapters.listing import Visibility
from opportunity.adapters.translation import envelope_of
from opportunity.application.views import with_schedule
from opportunity.domain.access import can_read
from opportunity.domain.opportunity import Opportunity
from opportunity.entrypoints.http.api import Api, Authenticate, opportunity_uuid
from opportunity.entrypoints.http.errors import InvalidParameter


def add_query_routes(router: APIRouter, api: Api, authenticate: Authenticate) -> None:
    Who = Annotated[Principal, Depends(authenticate)]

    def readable(principal: Principal, opportunity: Opportunity) -> Opportunity:
        if not can_read(principal, opportunity.owner_id, opportunity.team_id, opportunity.status):
            raise Forbidden("this opportunity is not yours to see", rule="role.read")
        return opportunity

    @router.get("/me", tags=["queries"], responses=refusals(401))
    async def me(who: Who) -> dict[str, Any]:
        """Who the token is (never the token): the workbench shows what the role may do."""
        return {"id": who.id, "role": who.role.value, "team_id": who.team_id}

    @router.get(
        "/opportunities/{opportunity_id}", tags=["queries"], responses=refusals(401, 403, 404, 503)
    )
    async def get_one(opportunity_id: str, who: Who) -> Answer:
        found = await run_in_threadpool(api.app.opportunity, opportunity_uuid(opportunity_id))
        state = await run_in_threadpool(api.app.shown_now, readable(who, found))
        return Answer(api.scheduled(state), headers={"ETag": f'"{found.version}"'})

    @router.get(
        "/opportunities/{opportunity_id}/history",
        tags=["queries"],
        responses=refusals(401, 403, 404, 503),
    )
    async def history(opportunity_id: str, who: Who) -> dict[str, Any]:
        oid = opportunity_uuid(opportunity_id)
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
                raise InvalidParameter(name, f"{name} must not contain the NUL character", "query")
        page = await run_in_threadpool(
            api.listing.search, filters, Visibility.of(who), limit, offset
        )
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
            "deferral_reasons": [
                {
                    "id": r.id,
                    "label": f"{r.label.zh} {r.label.en}",
                    "labels": r.label.model_dump(),
                    "revisit_after": f"P{r.revisit_after.days}D",
                    "note_required": r.note_required,
                }
                for r in api.rules.deferral_reasons
            ],
        }
