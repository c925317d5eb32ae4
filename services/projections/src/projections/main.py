"""The composition root of the projections service: `build_app(settings, **overrides)`."""

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider

from chassis.auth import Principals, auth_file_path, load_principals
from chassis.http import new_service
from chassis.serving import Service
from chassis.tracing import provider_from_environment
from contracts.rules import Role, Rulebook, load_rulebook
from projections.adapters import migrate
from projections.adapters.database import create_engine
from projections.adapters.readmodel import SqlReadModel
from projections.adapters.rows import write_pipeline_stages
from projections.adapters.schema import LIVE
from projections.adapters.store import Store
from projections.adapters.tally_tables import missing_reason
from projections.application.plans import PlanReports, Rep
from projections.application.reports import Reports
from projections.domain.projection import Projector
from projections.domain.stage_index import PipelineIndex
from projections.entrypoints.dashboard import build_dashboard
from projections.entrypoints.http import Api, build_router
from projections.entrypoints.instruments import Instruments
from projections.entrypoints.messaging import Messaging
from projections.settings import Settings

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(
    settings: Settings,
    *,
    rules: Rulebook | None = None,
    principals: Principals | None = None,
    clock: Callable[[], datetime] = utc_now,
    on_stored: Callable[[], None] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Wire the service; tests pass rules, principals, a clock, a hook that runs after
    each batch is durable and before its offsets are committed to Kafka, or a tracer provider
    (traces are on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set)."""
    rules = rules or load_rulebook(settings.rules_file)
    principals = principals or load_principals(auth_file_path(settings.auth_file))
    writer = create_engine(settings.projections_db_url, writer=True)
    reader = create_engine(settings.projections_db_url)
    migrate.upgrade(writer)
    with writer.begin() as conn:
        write_pipeline_stages(conn, rules)
    if (missing := missing_reason(writer)) is not None:
        log.warning("the reports read the tables alone, slowly, until the tallies are: %s", missing)
    metrics = Instruments()
    store = Store(
        writer,
        LIVE,
        Projector(PipelineIndex(rules), settings.zone, [r.id for r in rules.deferral_reasons]),
    )
    metrics.held.set(store.held_count())
    tracer_provider = tracer_provider or provider_from_environment("projections")
    messaging = (
        Messaging(bootstrap, settings, store, metrics, on_stored, tracer_provider)
        if (bootstrap := settings.kafka_bootstrap)
        else None
    )
    reports = Reports(
        SqlReadModel(reader, settings.zone), rules, settings.zone, settings.projections_currency
    )
    reps = [Rep(p.id, p.team_id) for p in principals.all if p.role is Role.REP]
    plans = PlanReports(
        SqlReadModel(reader, settings.zone),
        rules,
        settings.zone,
        settings.projections_currency,
        reps,
    )
    api = Api(reports, plans, reader, principals, settings.zone, clock, metrics, messaging)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Applying a batch makes hundreds of thousands of short-lived objects, and a report as
        # of an instant thousands; with the default thresholds the cyclic collector runs
        # every 700 of them over the whole young heap. Reference counting frees nearly all of
        # them anyway: the startup heap is frozen out of collection and young objects are
        # collected less often (+20% events per second in bench/projections_bench.py; a
        # report's p95 nearer its median).
        thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        if messaging is not None:
            messaging.start()
        yield
        if messaging is not None:
            await messaging.stop()
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        writer.dispose()
        reader.dispose()
        if tracer_provider is not None:
            tracer_provider.shutdown()

    service = new_service(
        "projections",
        "Funnel, dwell, win rates, forecast, stale deals, leaderboard (SPEC §4.2).",
        lifespan,
        store="projections database",
        max_body_bytes=settings.max_body_bytes,
        cors_origins=settings.cors_origins,
        tracer_provider=tracer_provider,
    )
    service.include_router(build_router(api))
    service.include_router(build_dashboard(rules))
    service.state.api = api
    service.state.store = store
    return service


# What `oppstream serve projections` (and `python -m projections`) runs.
SERVICE = Service("projections", Settings, build_app, store="projections_db_url")
