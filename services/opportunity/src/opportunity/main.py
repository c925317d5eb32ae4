"""The composition root of the opportunity service: `build_app(settings, **overrides)`."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI

from chassis.auth import Principals, auth_file_path, load_principals
from chassis.http import new_service
from chassis.serving import Service
from chassis.sql.engines import postgres_engine
from contracts.rules import Rulebook, load_rulebook
from opportunity.application import OpportunityApp
from opportunity.groupcommit import GroupCommitter
from opportunity.http import Api, build_router, install_error_handlers
from opportunity.listing import Listing
from opportunity.messaging import Messaging
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
) -> FastAPI:
    """Wire the service; tests pass rules, principals or a clock instead of the real ones."""
    rules = rules or load_rulebook(settings.rules_file)
    principals = principals or load_principals(auth_file_path(settings.auth_file))
    env = eventsourcing_env(settings.eventstore_url)
    if settings.aggregate_cache_size:
        # Commands trust the cache first and reread on a conflict; queries fast-forward.
        env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
        env["AGGREGATE_CACHE_FASTFORWARD"] = "n"
    opportunities = OpportunityApp(rules, env=env, zone=settings.zone)
    url = settings.eventstore_url
    engine = (
        sa.create_engine(sqlalchemy_url(url), pool_pre_ping=True)
        if url.startswith("sqlite")
        else postgres_engine(url)
    )
    metrics = Metrics()
    committer = GroupCommitter(
        opportunities, settings.group_commit_max, settings.writers, metrics.batch_sizes
    )
    messaging = (
        Messaging(bootstrap, settings, opportunities, committer, engine, clock, metrics)
        if (bootstrap := settings.kafka_bootstrap)
        else None
    )
    api = Api(
        opportunities,
        committer,
        Listing(opportunities, engine),
        principals,
        settings.zone,
        clock,
        metrics,
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

    service = new_service(
        "opportunity",
        "Commands and queries of sales opportunities (SPEC §4.1).",
        lifespan,
        store="event store",
        store_errors=(PersistenceError,),
    )
    install_error_handlers(service)
    service.include_router(build_router(api))
    service.state.api = api
    return service


# What `oppstream serve opportunity` runs.
SERVICE = Service("opportunity", Settings, build_app, store="eventstore_url")
