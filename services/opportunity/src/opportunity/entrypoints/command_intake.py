"""Commands from other services (SPEC §3.5): reclaim unless progressed, create a renewal
once; bytes that are no command are parked on `crm.opportunity.commands.dlq` unchanged."""

import asyncio
import logging
from collections.abc import Sequence
from uuid import UUID

from opentelemetry.trace import Span
from pydantic import TypeAdapter, ValidationError

from chassis.auth import Principal
from chassis.kafka.consuming import ConsumedRecord
from chassis.kafka.traces import each, within
from contracts import topics
from contracts.commands import CreateRenewalCommand, OpportunityCommand, ReclaimCommand
from contracts.rules import Role
from opportunity.adapters.poison import Poison, RecordIntake, first_problem, json_object
from opportunity.application.unit_of_work import Context, UnitOfWork
from opportunity.domain.errors import DomainError

log = logging.getLogger(__name__)

REMINDERS = Principal("reminders", Role.SERVICE)
_COMMAND: TypeAdapter[ReclaimCommand | CreateRenewalCommand] = TypeAdapter(OpportunityCommand)


def read_command(value: bytes | None) -> ReclaimCommand | CreateRenewalCommand | Poison:
    data = json_object(value)
    if isinstance(data, Poison):
        return data
    try:
        command = _COMMAND.validate_python(data)
    except ValidationError as exc:
        field, detail = first_problem(exc)
        return Poison(detail, field)
    try:
        UUID(command.opportunity_id)
    except ValueError:
        return Poison("opportunity_id: not an opportunity id (a UUID)", "opportunity_id")
    return command


class CommandIntake(RecordIntake):
    async def take(self, records: Sequence[ConsumedRecord], spans: Sequence[Span] = ()) -> None:
        """Execute every command (each in the trace of its record's span, if traced); park
        the records that are none."""
        read = [read_command(record.value) for record in records]
        traced = list(zip(read, each(spans, len(records)), strict=True))
        results = await asyncio.gather(
            *(
                within(span, self._execute(item))
                for item, span in traced
                if not isinstance(item, Poison)
            )
        )
        for outcome in results:
            self._outcomes.labels(outcome).inc()
        for record, (item, span) in zip(records, traced, strict=True):
            if isinstance(item, Poison):
                await within(span, self.park(topics.OPPORTUNITY_COMMANDS_DLQ, record, item))

    async def _execute(self, command: ReclaimCommand | CreateRenewalCommand) -> str:
        ctx = Context(REMINDERS, self._clock())

        def work(uow: UnitOfWork) -> str:
            if isinstance(command, ReclaimCommand):
                return self._app.reclaim_unless_progressed(uow, command, ctx)
            return self._app.create_renewal(uow, command, ctx)

        try:
            outcome: str = await self._committer.submit(work)
        except DomainError as refused:  # e.g. a reclaim racing a close: nothing recorded
            log.info("command %s refused: %s", command.command_id, refused.message)
            return f"refused_{refused.code}"
        return outcome
