"""OpportunityApp: the event-sourced application — one typed method per use case, and the
queries. Each command runs in a unit of work (unit_of_work.py), many per transaction."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.persistence import StoredEvent

from contracts.commands import CreateRenewalCommand, ReclaimCommand
from contracts.customer import Customer
from contracts.leads import QualifiedLead
from contracts.opportunity import OpportunityType, Status
from contracts.rules import Pipeline, Rulebook
from opportunity.application.creating import (
    GivenOpportunity,
    NewOpportunity,
    customer_history,
    decided,
)
from opportunity.application.customers import CustomerRecords, customer_key_person
from opportunity.application.pool import PoolKeeper, RepsOf
from opportunity.application.unit_of_work import Context, UnitOfWork, VersionMismatch
from opportunity.domain import access
from opportunity.domain.classification import classify
from opportunity.domain.customer_account import CustomerAccount
from opportunity.domain.customer_record import CustomerRecord
from opportunity.domain.deferral import revisit_day
from opportunity.domain.errors import DuplicateOpportunity
from opportunity.domain.opportunity import Opportunity
from opportunity.domain.pool_ledger import PoolLedger
from opportunity.domain.uniqueness import ActiveOpportunityIndex

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Taken:
    """What became of a qualified lead: created, taken before (a redelivery), or duplicate."""

    outcome: str
    opportunity_id: str


class OpportunityApp(CustomerRecords):
    name = "Opportunities"
    snapshotting_intervals = {  # noqa: RUF012 - eventsourcing reads a class attr
        Opportunity: 25,
        CustomerRecord: 25,
        PoolLedger: 50,
    }

    def __init__(
        self,
        rules: Rulebook,
        env: dict[str, str] | None = None,
        zone: ZoneInfo = DEFAULT_ZONE,
        team_of: Callable[[str], str | None] = lambda _: None,
        reps_of: RepsOf = lambda _: (),
    ) -> None:
        """`team_of`: a principal's team (an assignment follows it); `reps_of`: a team's reps."""
        super().__init__(env)
        self.rules, self.zone, self._team_of = rules, zone, team_of
        self.pool = PoolKeeper(self, rules.pool, zone, reps_of)

    # -- use cases (each runs inside a unit of work) ------------------------------------------

    def create(self, uow: UnitOfWork, new: NewOpportunity, ctx: Context) -> Opportunity:
        access.check_create(ctx.principal, new.owner_id, new.team_id)
        pipeline = self.rules.pipeline_for(new.type, new.customer.tier)
        index_id = ActiveOpportunityIndex.create_id(uscc=new.customer.uscc, type=new.type)
        index = uow.find(index_id, ActiveOpportunityIndex, rarely_exists=True)
        if index is not None and index.opportunity_id is not None:
            raise DuplicateOpportunity(new.customer.uscc, new.type, index.opportunity_id)
        at = ctx.at()
        opportunity = Opportunity(
            id=new.id,
            type=new.type,
            pipeline_id=pipeline.id,
            stage=pipeline.stage_ids[0],
            customer=new.customer.model_dump(mode="json"),
            owner_id=new.owner_id,
            team_id=new.team_id,
            title=new.title,
            amount=new.amount,
            currency=new.currency,
            expected_close_on=new.expected_close_on,
            source=new.source,
            lead_id=new.lead_id,
            renewal_of=new.renewal_of,
            at=at,
            actor=ctx.principal.id,
        )
        if index is None:
            index = ActiveOpportunityIndex(
                uscc=new.customer.uscc, type=new.type, opportunity_id=str(new.id)
            )
        else:
            index.take(str(new.id))
        uow.add(opportunity)
        uow.add(index)
        self.record_customer(uow, opportunity.customer, at, ctx.principal.id)
        return opportunity

    def create_given(self, uow: UnitOfWork, given: GivenOpportunity, ctx: Context) -> Opportunity:
        """A create of the HTTP API: tier and type decided by the rules (SPEC §8.2)."""
        # The role first: a principal refused learns nothing of the customer's contracts.
        access.check_create(ctx.principal, given.owner_id, given.team_id)
        history = customer_history(uow, given.customer.uscc, ctx.at(), self.zone)
        return self.create(uow, decided(self.rules, history, given), ctx)

    def advance(
        self, uow: UnitOfWork, opportunity_id: UUID, to_stage: str, ctx: Context
    ) -> Opportunity:
        o = self._load(uow, opportunity_id, "advance", ctx)
        who = ctx.principal
        o.advance(self._pipeline(o), to_stage, who.role, ctx.at(o), who.id)
        return o

    def revert(
        self, uow: UnitOfWork, opportunity_id: UUID, to_stage: str, reason: str, ctx: Context
    ) -> Opportunity:
        o = self._load(uow, opportunity_id, "revert", ctx)
        who = ctx.principal
        o.revert(self._pipeline(o), to_stage, reason, who.role, ctx.at(o), who.id)
        return o

    def log_follow_up(
        self, uow: UnitOfWork, opportunity_id: UUID, kind: str, note: str, ctx: Context
    ) -> Opportunity:
        o = self._load(uow, opportunity_id, "log_follow_up", ctx)
        o.log_follow_up(kind, note, ctx.at(o), ctx.principal.id)
        return o

    def update_info(
        self, uow: UnitOfWork, opportunity_id: UUID, fields: Mapping[str, object], ctx: Context
    ) -> Opportunity:
        """Change the named fields (None clears one), carried as text in InfoUpdated."""
        o = self._load(uow, opportunity_id, "update_info", ctx)
        if "forecast_category" in fields:
            access.check_forecast_override(ctx.principal)
        changes = {name: None if value is None else str(value) for name, value in fields.items()}
        o.update_info(changes, ctx.at(o), ctx.principal.id)
        return o

    def add_key_person(
        self, uow: UnitOfWork, opportunity_id: UUID, person: Mapping[str, Any], ctx: Context
    ) -> Opportunity:
        """Recorded on the opportunity as given, and added to its customer's key persons."""
        o = self._load(uow, opportunity_id, "add_key_person", ctx)
        joining = customer_key_person(person)
        o.add_key_person(_numbered("person_id", o.key_persons, person), ctx.at(o), ctx.principal.id)
        self.add_key_person_through(uow, o, joining, ctx)
        return o

    def record_competitor(
        self, uow: UnitOfWork, opportunity_id: UUID, competitor: Mapping[str, Any], ctx: Context
    ) -> Opportunity:
        o = self._load(uow, opportunity_id, "record_competitor", ctx)
        numbered = _numbered("competitor_id", o.competitors, competitor)
        o.record_competitor(numbered, ctx.at(o), ctx.principal.id)
        return o

    def attach_document(
        self, uow: UnitOfWork, opportunity_id: UUID, document: Mapping[str, Any], ctx: Context
    ) -> Opportunity:
        o = self._load(uow, opportunity_id, "attach_document", ctx)
        numbered = _numbered("document_id", o.documents, document)
        o.attach_document(numbered, ctx.at(o), ctx.principal.id)
        return o

    def pause(
        self, uow: UnitOfWork, opportunity_id: UUID, reason: str, until: date | None, ctx: Context
    ) -> Opportunity:
        o = self._load(uow, opportunity_id, "pause", ctx)
        o.pause(reason, until, ctx.at(o), ctx.principal.id)
        return o

    def resume(self, uow: UnitOfWork, opportunity_id: UUID, ctx: Context) -> Opportunity:
        o = self._load(uow, opportunity_id, "resume", ctx)
        o.resume(ctx.at(o), ctx.principal.id)
        return o

    def defer(  # noqa: PLR0913 - the coded reason, the day to revisit and a note
        self,
        uow: UnitOfWork,
        opportunity_id: UUID,
        reason: str,
        revisit_on: date | None,
        ctx: Context,
        note: str | None = None,
    ) -> Opportunity:
        """For a reason of the rules file; no `revisit_on`: the reason's lead time."""
        o = self._load(uow, opportunity_id, "defer", ctx)
        at = ctx.at(o)
        revisit = revisit_day(self.rules, reason, note, revisit_on, at, self.zone)
        o.defer(reason, revisit, at, ctx.principal.id, note)
        return o

    def reactivate(self, uow: UnitOfWork, opportunity_id: UUID, ctx: Context) -> Opportunity:
        o = self._load(uow, opportunity_id, "reactivate", ctx)
        o.reactivate(ctx.at(o), ctx.principal.id)
        return o

    def reclaim(  # noqa: PLR0913 - a reclaim by a rule names the rule and its command
        self,
        uow: UnitOfWork,
        opportunity_id: UUID,
        reason: str,
        ctx: Context,
        rule_id: str | None = None,
        command_id: str | None = None,
    ) -> Opportunity:
        o = self._load(uow, opportunity_id, "reclaim", ctx)
        self.pool.reclaim(uow, o, reason, rule_id, command_id, ctx)
        return o

    def assign(
        self, uow: UnitOfWork, opportunity_id: UUID, owner_id: str, ctx: Context, override: bool
    ) -> Opportunity:
        """A known owner brings the opportunity into the owner's team."""
        o = self._load(uow, opportunity_id, "assign", ctx)
        team = self._team_of(owner_id)
        access.check_assign(ctx.principal, owner_id, team, o.team_id)
        self.pool.assign(uow, o, owner_id, team, override, ctx)
        return o

    def claim(self, uow: UnitOfWork, opportunity_id: UUID, ctx: Context) -> Opportunity:
        o = self._load(uow, opportunity_id, "claim", ctx)
        self.pool.claim(uow, o, ctx)
        return o

    def win(  # noqa: PLR0913 - the contract's four facts
        self,
        uow: UnitOfWork,
        opportunity_id: UUID,
        amount: Decimal,
        contract_ref: str,
        contract_start_on: date | None,
        contract_end_on: date | None,
        ctx: Context,
    ) -> Opportunity:
        o = self._load(uow, opportunity_id, "win", ctx)
        at, actor = ctx.at(o), ctx.principal.id
        o.win(
            self._pipeline(o), amount, contract_ref, contract_start_on, contract_end_on, at, actor
        )
        self._closed(uow, o)
        return o

    def lose(
        self,
        uow: UnitOfWork,
        opportunity_id: UUID,
        reason: str,
        competitor: str | None,
        ctx: Context,
    ) -> Opportunity:
        o = self._load(uow, opportunity_id, "lose", ctx)
        o.lose(self.rules, reason, competitor, ctx.at(o), ctx.principal.id)
        self._closed(uow, o)
        return o

    def void(self, uow: UnitOfWork, opportunity_id: UUID, reason: str, ctx: Context) -> Opportunity:
        o = self._load(uow, opportunity_id, "void", ctx)
        o.void(reason, ctx.at(o), ctx.principal.id)
        self._closed(uow, o)
        return o

    def _load(
        self, uow: UnitOfWork, opportunity_id: UUID, command: str, ctx: Context
    ) -> Opportunity:
        """The opportunity, once the principal may give `command` on it and `If-Match`, if
        given, names its version."""
        opportunity = uow.get(opportunity_id)
        access.check_act(ctx.principal, command, opportunity.owner_id, opportunity.team_id)
        if ctx.if_match is not None and ctx.if_match != opportunity.version:
            raise VersionMismatch(
                f"If-Match names version {ctx.if_match}; the opportunity is at "
                f"version {opportunity.version}",
                expected=ctx.if_match,
                current=opportunity.version,
            )
        return opportunity

    def _pipeline(self, opportunity: Opportunity) -> Pipeline:
        return self.rules.pipeline(opportunity.pipeline_id)

    def _closed(self, uow: UnitOfWork, opportunity: Opportunity) -> None:
        """Won, lost or voided: the (uscc, type) is free again; a won contract is recorded."""
        index_id = ActiveOpportunityIndex.create_id(
            uscc=opportunity.customer["uscc"], type=opportunity.type
        )
        index = uow.find(index_id, ActiveOpportunityIndex)
        if index is not None:
            index.release(str(opportunity.id))
        if opportunity.status == Status.WON:
            uscc = opportunity.customer["uscc"]
            account = uow.find(CustomerAccount.create_id(uscc), CustomerAccount)
            if account is None:
                account = CustomerAccount(uscc=uscc)
                uow.add(account)
            account.record_contract(str(opportunity.id), opportunity.contract_end_on)

    # -- use cases of other systems (Kafka) --------------------------------------------------

    def take_lead(self, uow: UnitOfWork, lead: QualifiedLead, ctx: Context) -> Taken:
        """Create the lead's opportunity once, whatever the redeliveries: its id comes from
        the lead id. `new`, or `resale` when the customer has a running won contract."""
        opportunity_id = Opportunity.new_id("lead", lead.lead_id)
        if uow.find(opportunity_id, Opportunity, rarely_exists=True) is not None:
            return Taken("taken_before", str(opportunity_id))
        history = customer_history(uow, lead.customer.uscc, ctx.at(), self.zone)
        resale = history.running and self.rules.intake.resale_when_contract_running
        new = NewOpportunity(
            id=opportunity_id,
            type=OpportunityType.RESALE if resale else OpportunityType.NEW,
            customer=classify(lead.customer, self.rules.classification),
            owner_id=lead.owner_id,
            team_id=lead.team_id,
            amount=lead.expected_amount,
            currency=lead.currency or "CNY",
            source=lead.source or "lead",
            lead_id=lead.lead_id,
        )
        try:
            self.create(uow, new, ctx)
        except DuplicateOpportunity as duplicate:
            return Taken("duplicate", duplicate.existing_id)
        return Taken("created", str(opportunity_id))

    def reclaim_unless_progressed(
        self, uow: UnitOfWork, command: ReclaimCommand, ctx: Context
    ) -> str:
        """Reclaim only if nothing progressed since the version the reminder was based on."""
        opportunity = uow.find(UUID(command.opportunity_id), Opportunity)
        if opportunity is None:
            return "unknown_opportunity"
        if command.command_id in opportunity.reclaimed_by:
            # Sent again (after the broker lost its log): taken once, whatever happened since.
            return "reclaimed_before"
        if opportunity.last_progress_version > command.based_on_version:
            return "progressed"
        if opportunity.status != Status.OPEN:
            # Rules never reclaim a deferred opportunity; a reclaim computed while it was open
            # that arrives after a deferral is stale too (only people reclaim deferred ones).
            return f"not_reclaimable_while_{opportunity.status}"
        self.reclaim(uow, opportunity.id, command.reason, ctx, command.rule_id, command.command_id)
        return "reclaimed"

    def create_renewal(self, uow: UnitOfWork, command: CreateRenewalCommand, ctx: Context) -> str:
        """The renewal of a won opportunity, created once: its id comes from the won one's."""
        won = uow.find(UUID(command.opportunity_id), Opportunity)
        if won is None:
            return "unknown_opportunity"
        if won.status != Status.WON:
            return f"not_won_but_{won.status}"
        renewal_id = Opportunity.new_id("renewal", str(won.id))
        if uow.find(renewal_id, Opportunity) is not None:
            return "created_before"
        new = NewOpportunity(
            id=renewal_id,
            type=OpportunityType.RENEWAL,
            customer=Customer.model_validate(won.customer),
            owner_id=won.owner_id,
            team_id=won.team_id,
            title=f"Renewal of {won.contract_ref}" if won.contract_ref else None,
            amount=won.amount,
            currency=won.currency,
            expected_close_on=won.contract_end_on,
            source="renewal",
            renewal_of=str(won.id),
        )
        try:
            self.create(uow, new, ctx)
        except DuplicateOpportunity:
            return "renewal_active_already"
        return "created"

    # -- queries ----------------------------------------------------------------------------

    def opportunity(self, opportunity_id: UUID) -> Opportunity:
        return UnitOfWork(self).get(opportunity_id)

    def history(self, opportunity_id: UUID) -> list[StoredEvent]:
        """The opportunity's recorded events, oldest first."""
        self.opportunity(opportunity_id)
        return list(self.recorder.select_events(opportunity_id))


def _numbered(
    id_field: str, existing: list[dict[str, Any]], item: Mapping[str, Any]
) -> dict[str, Any]:
    """A key person, competitor or document with a short id, numbered within the opportunity."""
    return {id_field: str(len(existing) + 1), **item}
