"""The composition root of the opportunity service: `build_app(settings, **overrides)`."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from chassis.auth import Principals, auth_file_path, load_principals
from chassis.http import new_service
from chassis.kafka.logwatch import LogWatch
from chassis.serving import Service
from chassis.sql.engines import postgres_engine
from chassis.tracing import provider_from_environment, tracer_of
from contracts.rules import Role, Rulebook, load_rulebook
from opportunity.adapters.customer_listing import CustomerListing
from opportunity.adapters.leadership import leadership_for
from opportunity.adapters.listing import Listing
from opportunity.adapters.messaging import Consumed, Messaging
from opportunity.adapters.planning_listing import CompetitionListing, TargetListing
from opportunity.adapters.pool_holdings import ListingHoldings
from opportunity.adapters.publishing import Publisher
from opportunity.adapters.relay import build_relay
from opportunity.application.app import OpportunityApp
from opportunity.application.commit_traces import CommitTraces
from opportunity.application.competitions import Competitions
from opportunity.application.customers import CustomerQueries
from opportunity.application.group_commit import GroupCommitter
from opportunity.application.targets import Targets
from opportunity.domain.planning import Staff
from opportunity.entrypoints.command_intake import CommandIntake
from opportunity.entrypoints.consumers import build_consumers
from opportunity.entrypoints.http.api import Api
from opportunity.entrypoints.http.errors import install_error_handlers
from opportunity.entrypoints.http.router import build_router
from opportunity.entrypoints.lead_intake import LeadIntake
from opportunity.entrypoints.workbench import install_workbench
from opportunity.metrics import Metrics
from opportunity.settings import Settings, eventsourcing_env, sqlalchemy_url


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(
    settings: Settings,
    *,
    rules: Rulebook | None = None,
    principals: Principals | None = None,
    clock: Callable[[], datetime] = utc_now,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Wire the service; tests pass rules, principals, a clock or a tracer provider instead of
    the real ones (traces are on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set)."""
    rules = rules or load_rulebook(settings.rules_file)
    principals = principals or load_principals(auth_file_path(settings.auth_file))
    env = eventsourcing_env(settings.eventstore_url)
    if settings.aggregate_cache_size:
        # Commands trust the cache first and reread on a conflict; queries fast-forward.
        env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
        env["AGGREGATE_CACHE_FASTFORWARD"] = "n"
    opportunities = OpportunityApp(
        rules,
        env=env,
        zone=settings.zone,
        team_of=_team_of(principals),
        reps_of=_reps_of(principals),
    )
    url = settings.eventstore_url
    engine = (
        sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True)
        if url.startswith("sqlite")
        else postgres_engine(url)
    )
    listing = Listing(opportunities, engine)
    opportunities.pool.count_in(ListingHoldings(opportunities, listing, engine))
    metrics = Metrics()
    tracer_provider = tracer_provider or provider_from_environment("opportunity")
    tracer = tracer_of(tracer_provider, "opportunity")
    traces = None if tracer is None else CommitTraces(tracer)
    committer = GroupCommitter(
        opportunities, settings.group_commit_max, settings.writers, metrics.batch_sizes, traces
    )
    messaging = None
    if bootstrap := settings.kafka_bootstrap:
        relay = build_relay(
            settings,
            opportunities,
            engine,
            leadership_for(settings.eventstore_url),
            metrics,
            traces,
        )
        committer.on_saved = relay.wake

        def consumers(publisher: Publisher, watch: LogWatch) -> Consumed:
            return build_consumers(
                LeadIntake(opportunities, committer, publisher, clock, metrics.leads),
                CommandIntake(opportunities, committer, publisher, clock, metrics.remote_commands),
                watch,
                settings.kafka_fetch_max_wait_ms,
                settings.kafka_session_timeout_ms,
                (settings.intake_group, settings.commands_group),
                tracer,
            )

        messaging = Messaging(bootstrap, settings, relay, consumers, metrics.log, tracer_provider)
    listing = Listing(opportunities, engine)
    staff = Staff.of(principals.all)
    target_listing = TargetListing(opportunities, engine)
    competition_listing = CompetitionListing(opportunities, engine)
    planning = (
        Targets(opportunities, staff, lambda: target_listing),
        Competitions(opportunities, staff, settings.zone, lambda: competition_listing),
    )
    api = Api(
        opportunities,
        committer,
        listing,
        CustomerListing(opportunities, engine, listing),
        CustomerQueries(opportunities, listing),
        principals,
        settings.zone,
        clock,
        metrics,
        planning,
        messaging,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if messaging is not None:
            messaging.start()
        yield
        if messaging is not None:
            await messaging.stop()
        await committer.close()
        opportunities.close()
        engine.dispose()
        if tracer_provider is not None:
            tracer_provider.shutdown()

    service = new_service(
        "opportunity",
        "Commands and queries of sales opportunities (SPEC §4.1).",
        lifespan,
        store="event store",
        max_body_bytes=settings.max_body_bytes,
        cors_origins=settings.cors_origins,
        store_errors=(PersistenceError,),
        tracer_provider=tracer_provider,
    )
    install_error_handlers(service)
    service.include_router(build_router(api))
    install_workbench(service, settings.projections_url, settings.reminders_url)
    service.state.api = api
    return service


def _team_of(principals: Principals) -> Callable[[str], str | None]:
    def team_of(principal_id: str) -> str | None:
        found = principals.by_id(principal_id)
        return found.team_id if found is not None else None

    return team_of


def _reps_of(principals: Principals) -> Callable[[str], list[str]]:
    def reps_of(team_id: str) -> list[str]:
        return sorted(p.id for p in principals.all if p.role is Role.REP and p.team_id == team_id)

    return reps_of


# What `oppstream serve opportunity` runs.
SERVICE = Service("opportunity", Settings, build_app, store="eventstore_url")
