"""GET /pool/standing (SPEC §8.3): what an owner holds and claimed today under each pool rule,
and the opportunities the owner may not claim back yet."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from chassis.auth import Principal
from contracts.problems import refusals
from opportunity.application.pool import Standing
from opportunity.domain.access import check_read_standing
from opportunity.entrypoints.http.api import Api, Authenticate
from opportunity.entrypoints.http.errors import InvalidParameter


def add_pool_routes(router: APIRouter, api: Api, authenticate: Authenticate) -> None:
    Who = Annotated[Principal, Depends(authenticate)]

    @router.get("/pool/standing", tags=["queries"], responses=refusals(401, 403, 503))
    async def standing(
        who: Who,
        owner_id: Annotated[
            str | None, Query(min_length=1, max_length=100, description="default: the caller")
        ] = None,
    ) -> dict[str, Any]:
        owner = owner_id or who.id
        if "\x00" in owner:  # PostgreSQL text cannot hold NUL: no owner has it
            raise InvalidParameter(
                "owner_id", "owner_id must not contain the NUL character", "query"
            )
        known = api.principals.by_id(owner)
        check_read_standing(who, owner, known.team_id if known is not None else None)
        found = await run_in_threadpool(api.app.pool.standing, owner, api.clock())
        return answer(found)


def _total(values: list[int | None]) -> int | None:
    """The sum, or None (no limit) when one of them is None."""
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


def answer(standing: Standing) -> dict[str, Any]:
    """The standing as the API shows it: totals over the pool rules, then rule by rule."""
    rules = standing.rules
    return {
        "owner_id": standing.owner_id,
        "held": sum(r.held for r in rules),
        "max_held": _total([r.max_held for r in rules]),
        "claims_today": sum(r.claims_today for r in rules),
        "claim_limit_per_day": _total([r.claim_limit_per_day for r in rules]),
        "cooling": [
            {"opportunity_id": oid, "until": until.isoformat()} for oid, until in standing.cooling
        ],
        "rules": [
            {
                "rule_id": r.rule_id,
                "held": r.held,
                "max_held": r.max_held,
                "claims_today": r.claims_today,
                "claim_limit_per_day": r.claim_limit_per_day,
            }
            for r in rules
        ],
    }
