"""Lead intake (SPEC §3.3): a qualified lead becomes an opportunity once, or is answered on
`crm.leads.rejected` (duplicate, invalid), or, when its bytes are no message, parked on
`crm.leads.qualified.dlq` unchanged."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from opentelemetry.trace import Span
from pydantic import ValidationError

from chassis.auth import Principal
from chassis.kafka.consuming import ConsumedRecord
from chassis.kafka.traces import each, within
from contracts import topics
from contracts.leads import QualifiedLead, RejectedLead, RejectionReason
from contracts.rules import Role
from opportunity.adapters.poison import Poison, RecordIntake, first_problem, json_object
from opportunity.application.app import Taken
from opportunity.application.unit_of_work import Context, UnitOfWork
from opportunity.domain.errors import DomainError

INTAKE = Principal("intake", Role.SERVICE)


@dataclass(frozen=True)
class Invalid:
    """A message with a lead id but a field that breaks the contract: answered, not parked."""

    lead_id: str
    field: str
    detail: str


def read_lead(value: bytes | None) -> QualifiedLead | Invalid | Poison:
    data = json_object(value)
    if isinstance(data, Poison):
        return data
    try:
        return QualifiedLead.model_validate(data)
    except ValidationError as exc:
        for problem in exc.errors():
            if problem["loc"] == ("lead_id",):
                # The answer is keyed by the lead id and carries it: without a lead id the
                # contract takes (missing, no string, empty, too long) there is none to send.
                return Poison(f"lead_id: {problem['msg']}", "lead_id")
        field, detail = first_problem(exc)
        return Invalid(data["lead_id"], field, detail)


class LeadIntake(RecordIntake):
    async def take(self, records: Sequence[ConsumedRecord], spans: Sequence[Span] = ()) -> None:
        """Make every record's result durable and answered (each in the trace of its record's
        span, if traced); raises if that is not possible yet (the caller then takes the same
        records again)."""
        read = [read_lead(record.value) for record in records]
        traced = list(zip(read, each(spans, len(records)), strict=True))
        results = await asyncio.gather(
            *(
                within(span, self._create(item))
                for item, span in traced
                if isinstance(item, QualifiedLead)
            )
        )
        created = iter(results)
        for record, (item, span) in zip(records, traced, strict=True):
            if isinstance(item, Poison):
                await within(span, self.park(topics.LEADS_QUALIFIED_DLQ, record, item))
            elif isinstance(item, Invalid):
                await within(span, self._reject(item.lead_id, RejectionReason.INVALID, item.detail))
                self._outcomes.labels("invalid").inc()
            else:
                await within(span, self._answer(item, next(created)))

    async def _create(self, lead: QualifiedLead) -> Taken | DomainError:
        now = self._clock()
        ctx = Context(INTAKE, now, occurred_at=min(lead.qualified_at, now))

        def work(uow: UnitOfWork) -> Taken:
            return self._app.take_lead(uow, lead, ctx)

        try:
            taken: Taken = await self._committer.submit(work)
        except DomainError as refused:
            return refused
        return taken

    async def _answer(self, lead: QualifiedLead, result: Taken | DomainError) -> None:
        if isinstance(result, DomainError):
            field = result.facts.get("field")
            detail = f"{field}: {result.message}" if field else result.message
            await self._reject(lead.lead_id, RejectionReason.INVALID, detail)
            self._outcomes.labels("invalid").inc()
        elif result.outcome == "duplicate":
            await self._reject(
                lead.lead_id,
                RejectionReason.DUPLICATE,
                f"customer {lead.customer.uscc} has an active opportunity of this type",
                result.opportunity_id,
            )
            self._outcomes.labels("duplicate").inc()
        else:
            self._outcomes.labels(result.outcome).inc()

    async def _reject(
        self, lead_id: str, reason: RejectionReason, detail: str, existing: str | None = None
    ) -> None:
        answer = RejectedLead(
            lead_id=lead_id, reason=reason, detail=detail, existing_opportunity_id=existing
        )
        await self._publisher.publish(
            topics.LEADS_REJECTED,
            lead_id.encode(),
            orjson.dumps(answer.model_dump(mode="json")),
            {},
        )
