"""What the routes share, wired once by the composition root: the application, the group
committer, the listings, the targets and competitions, who holds which token, the clock; and
how a command is answered."""

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from chassis.auth import Forbidden, Principal, Principals
from chassis.http import Answer
from contracts.rules import Rulebook
from opportunity.adapters.customer_listing import CustomerListing
from opportunity.adapters.listing import Listing
from opportunity.adapters.messaging import Messaging
from opportunity.application.app import OpportunityApp
from opportunity.application.competitions import Competitions
from opportunity.application.customers import CustomerQueries
from opportunity.application.group_commit import GroupCommitter
from opportunity.application.idempotency import Answered, IdempotencyKey, once
from opportunity.application.targets import Recorded, Targets
from opportunity.application.unit_of_work import Context, NotFound, UnitOfWork, Work
from opportunity.application.views import with_schedule
from opportunity.domain.access import imports_history
from opportunity.domain.errors import DomainError, OccurredAtRefused
from opportunity.domain.opportunity import Opportunity
from opportunity.entrypoints.http.bodies import Body
from opportunity.entrypoints.http.errors import InvalidParameter, error_body, status_of
from opportunity.metrics import Metrics

# The FastAPI dependency that finds a request's principal (chassis.auth.bearer_principal).
Authenticate = Callable[..., Awaitable[Principal]]

# Allow a little clock skew between a client importing history and this server.
FUTURE_TOLERANCE = timedelta(seconds=5)


class Api:
    def __init__(  # noqa: PLR0913 - the composition root passes each part by name
        self,
        app: OpportunityApp,
        committer: GroupCommitter,
        listing: Listing,
        customer_listing: CustomerListing,
        customers: CustomerQueries,
        principals: Principals,
        zone: ZoneInfo,
        clock: Callable[[], datetime],
        metrics: Metrics,
        planning: tuple[Targets, Competitions],
        messaging: Messaging | None = None,
    ) -> None:
        self.app, self.committer, self.listing = app, committer, listing
        self.customer_listing, self.customers = customer_listing, customers
        self.principals, self.zone, self.clock, self.metrics = principals, zone, clock, metrics
        self.targets, self.competitions = planning
        self.messaging = messaging

    @property
    def rules(self) -> Rulebook:
        return self.app.rules

    def principal(self, token: str) -> Principal | None:
        """Who holds the bearer token, if anyone."""
        return self.principals.find(token)

    def scheduled(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state with its reminder times as of now."""
        return with_schedule(state, self.rules, self.zone, self.clock())

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

    async def command(  # noqa: PLR0913 - what one command needs, from either lane
        self,
        name: str,
        request: Request,
        principal: Principal,
        idempotency_key: str | None,
        payload: Body,
        use: Work[Opportunity],
        status_code: int = 200,
        touches: UUID | None = None,
    ) -> Answer:
        """Run a use case in the next group commit, once per Idempotency-Key, and answer with
        the opportunity's new state (its customer's key persons in it); count it by name and
        status."""

        def shown(uow: UnitOfWork) -> dict[str, Any]:
            return self.app.shown(uow, use(uow))

        answering = self._answer(
            request,
            principal,
            idempotency_key,
            payload,
            shown,
            self.scheduled,
            status_code,
            touches,
        )
        return await self._counted(name, answering)

    async def customer_command(  # noqa: PLR0913 - what one command on a customer needs
        self,
        name: str,
        request: Request,
        principal: Principal,
        idempotency_key: str | None,
        payload: Body,
        uscc: str,
        use: Work[dict[str, Any]],
        status_code: int = 200,
    ) -> Answer:
        """Like `command`, on a customer the principal may change (checked first); answered
        with what `use` returns."""

        async def answering() -> Answer:
            await run_in_threadpool(self.customers.check_change, uscc, principal)
            return await self._answer(
                request, principal, idempotency_key, payload, use, _as_is, status_code, None
            )

        return await self._counted(name, answering())

    async def record(self, name: str, use: Work[Recorded]) -> Answer:
        """Run a use case of a target or a competition in the next group commit; answer with
        the status and body it gives; count it by name and status. (Both are idempotent by
        key: the same value or definition again records nothing.)"""

        async def answering() -> Answer:
            status_code, answer = await self.committer.submit(use)
            return Answer(answer, status_code=status_code)

        return await self._counted(name, answering())

    async def _counted(self, name: str, answering: Awaitable[Answer]) -> Answer:
        """The answer, a refusal answered as such; counted by name and status."""
        started = time.perf_counter()
        try:
            response = await answering
        except DomainError as exc:
            response = Answer(error_body(exc), status_code=status_of(exc))
        except Forbidden as exc:
            response = Answer({"detail": exc.detail}, status_code=403)
        self.metrics.commands.labels(name, str(response.status_code)).inc()
        self.metrics.command_seconds.labels(name).observe(time.perf_counter() - started)
        return response

    async def _answer(  # noqa: PLR0913
        self,
        request: Request,
        principal: Principal,
        key: str | None,
        payload: Body,
        use: Work[dict[str, Any]],
        finish: Callable[[dict[str, Any]], dict[str, Any]],
        status_code: int,
        touches: UUID | None,
    ) -> Answer:
        """What `use` returns in the next group commit (once per key), `finish`ed."""
        if key is None:
            # The state as this command left it, taken in its unit of work (a later command
            # of the same batch may change the aggregate again); its reminder times after.
            state: dict[str, Any] = await self.committer.submit(use, touches)
            return Answer(finish(state), status_code=status_code)
        idempotency = IdempotencyKey(principal.id, key, _fingerprint(request, payload))
        answered: Answered = await self.committer.submit(
            once(idempotency, status_code, use, finish), touches
        )
        headers = {"Idempotent-Replayed": "true"} if answered.replayed else None
        return Answer(answered.body, status_code=answered.status_code, headers=headers)


def _as_is(answer: dict[str, Any]) -> dict[str, Any]:
    return answer


def _fingerprint(request: Request, payload: Body) -> str:
    content = payload.model_dump(mode="json")
    text = json.dumps([request.method, request.url.path, content], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    digits = if_match.strip().removeprefix("W/").strip('"')
    if not digits.isdigit():
        raise InvalidParameter(
            "If-Match", "If-Match is the opportunity version, e.g. If-Match: 3", "header"
        )
    return int(digits)


def opportunity_uuid(opportunity_id: str) -> UUID:
    """The id in a path; an id that is no UUID names no opportunity."""
    try:
        return UUID(opportunity_id)
    except ValueError:
        raise NotFound(f"no opportunity {opportunity_id}", id=opportunity_id) from None
