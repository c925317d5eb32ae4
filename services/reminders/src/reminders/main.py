"""The composition root of the reminders service: `build_app(settings, **overrides)`."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider

from chassis.auth import Principals, auth_file_path, load_principals
from chassis.http import (
    KAFKA_NOT_CONFIGURED,
    READINESS_SECONDS,
    BoundedCheck,
    new_service,
)
from chassis.kafka.broker import keep_trying, new_broker, start_broker
from chassis.kafka.logwatch import LogWatch
from chassis.kafka.producing import ensure_topics
from chassis.serving import Service
from chassis.tracing import RecentSpans, provider_from_environment, tracer_of
from contracts.rules import Rulebook, load_rulebook
from reminders.adapters.channels import HttpSender
from reminders.adapters.kafka import KafkaPublisher, kafka_publisher
from reminders.adapters.store import Store
from reminders.adapters.system_clock import system_clock
from reminders.application.delivery import DeliveryWorker
from reminders.application.intake import EventIntake
from reminders.application.ownership import Ownership
from reminders.application.ports import Publisher
from reminders.application.replan import replan_after_rules_change
from reminders.application.scheduler import Scheduler
from reminders.domain.clock import Clock
from reminders.domain.timers import Planner, managers_by_team
from reminders.entrypoints.consumers import Rebalance, build_consumer
from reminders.entrypoints.http import Api, build_router
from reminders.entrypoints.inbox import build_inbox_router
from reminders.metrics import Metrics
from reminders.settings import Settings

log = logging.getLogger(__name__)


class Runtime:
    """The service's moving parts, started in the background so HTTP answers at once: the
    schema, then (with Kafka) the topics, the consumer and the scheduler."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        planner: Planner,
        clock: Clock,
        metrics: Metrics,
        publisher: Publisher | None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._settings, self._store, self._planner, self._clock = settings, store, planner, clock
        self.ownership = Ownership()
        self._publisher = publisher
        tracer = tracer_of(tracer_provider, "reminders")
        handled: RecentSpans[bytes] = RecentSpans()  # the event handled last, by opportunity
        if publisher is None and settings.kafka_bootstrap:
            publisher = kafka_publisher(settings, tracer, handled)
            self._publisher = publisher
        self.scheduler = (
            Scheduler(
                store,
                planner,
                publisher,
                clock,
                self.ownership,
                metrics,
                settings.reminders_batch,
                settings.reminders_tick_ms / 1000,
            )
            if publisher is not None
            else None
        )
        self.broker: KafkaBroker | None = None
        self.rebalance = Rebalance(
            store, self.ownership, self._wake, LogWatch("reminders", metrics.log)
        )
        if settings.kafka_bootstrap:
            self.broker = new_broker(settings.kafka_bootstrap, settings, tracer_provider)
            router, self._watch_stranded = build_consumer(
                EventIntake(store, planner, clock, metrics),
                self.rebalance,
                self._wake,
                settings.reminders_group,
                settings.kafka_fetch_max_wait_ms,
                settings.kafka_session_timeout_ms,
                tracer=tracer,
                handled=None if tracer is None else handled,
            )
            self.broker.include_router(router)
        self._sender = HttpSender(planner.rules.delivery.timeout.total_seconds())
        self.delivery = DeliveryWorker(
            store,
            self._sender,
            planner.rules.delivery,
            clock,
            metrics,
            settings.zone,
            settings.reminders_tick_ms / 1000,
        )
        self._store_answers = BoundedCheck(store.ping)
        self.migrated = False
        self.connected = False
        self.replanned = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.stop()
        if isinstance(self._publisher, KafkaPublisher):
            await self._publisher.close()
        await self._sender.close()

    def _wake(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wake()

    async def _run(self) -> None:
        await keep_trying("reminders: store", self._migrate)
        self._tasks.append(asyncio.create_task(self._replan()))
        # Deliveries go out whatever the broker does: they were written with the firing.
        self._tasks.append(asyncio.create_task(self.delivery.run()))
        if self.broker is None:
            log.warning("reminders: OPPSTREAM_KAFKA_BOOTSTRAP unset; no events, no reminders")
            return
        await keep_trying("reminders: kafka", self._connect)
        if self.scheduler is not None:
            await self.scheduler.run()

    async def _migrate(self) -> None:
        await asyncio.to_thread(self._store.migrate)
        self.migrated = True

    async def _connect(self) -> None:
        if self.broker is None:
            return
        await ensure_topics(self._settings)
        await start_broker(self.broker)
        self._tasks.append(asyncio.create_task(self._watch_stranded()))
        self.connected = True

    async def _replan(self) -> None:
        """Plan every opportunity's next look again if the rules changed (replan.py)."""
        try:
            if await asyncio.to_thread(
                replan_after_rules_change,
                self._store,
                self._planner,
                self._clock,
                self._settings.timezone,
            ):
                self._wake()
            self.replanned = True
        except Exception as exc:  # the next start tries again
            log.warning("reminders: replanning after a rules change failed: %s", exc)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready once the store answers (schema migrated) and, with Kafka configured, the
        broker does and the consumer has joined its group; else 503, `down` naming which of
        the reminders database and the broker does not answer (within a second)."""
        store, reachable = await asyncio.gather(self._store_status(), self._broker_answers())
        detail: dict[str, Any] = {"store": store}
        down = ["reminders database"] if store.startswith("unavailable") else []
        ready = store == "ok"
        if self.broker is None:
            detail["kafka"] = KAFKA_NOT_CONFIGURED
        else:
            joined = self.rebalance.assignments > 0
            detail["broker"] = "connected" if reachable else "unavailable"
            detail["consumer"] = "joined" if joined else "joining"
            ready = ready and reachable and joined
            if not reachable:
                down.append("broker")
        detail["partitions"] = self.ownership.partitions
        detail["reading_again"] = self.rebalance.watch.status()
        detail["delivery"] = {"error": self.delivery.last_error}
        if self.scheduler is not None:
            detail["scheduler"] = {
                "rounds": self.scheduler.rounds,
                "error": self.scheduler.last_error,
            }
        return ready, {**detail, "down": down}

    async def _store_status(self) -> str:
        try:
            await self._store_answers()
        except Exception as exc:  # any store failure means not ready
            return f"unavailable: {type(exc).__name__}"
        return "ok" if self.migrated else "migrating"

    async def _broker_answers(self) -> bool:
        return (
            self.broker is not None
            and self.connected
            and await self.broker.ping(timeout=READINESS_SECONDS)
        )


def build_app(
    settings: Settings,
    *,
    rules: Rulebook | None = None,
    principals: Principals | None = None,
    clock: Clock = system_clock,
    publisher: Publisher | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """Wire the service; tests pass rules, principals, a clock, a publisher or a tracer
    provider instead (traces are on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set)."""
    rules = rules or load_rulebook(settings.rules_file)
    principals = principals or load_principals(auth_file_path(settings.auth_file))
    store = Store(settings.reminders_db_url)
    planner = Planner(rules, settings.zone, managers_by_team(principals.all))
    metrics = Metrics()
    tracer_provider = tracer_provider or provider_from_environment("reminders")
    runtime = Runtime(settings, store, planner, clock, metrics, publisher, tracer_provider)
    api = Api(store, planner, principals, clock, metrics, runtime.readiness)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        yield
        await runtime.stop()
        store.close()
        if tracer_provider is not None:
            tracer_provider.shutdown()

    service = new_service(
        "reminders",
        "Follow-ups, stale warnings, escalations, reclamations, revisits, "
        "pause ends and renewals (SPEC §3.4, §3.5, §6).",
        lifespan,
        store="reminders database",
        max_body_bytes=settings.max_body_bytes,
        cors_origins=settings.cors_origins,
        tracer_provider=tracer_provider,
    )
    service.include_router(build_router(api))
    service.include_router(build_inbox_router(store, principals, clock, runtime.delivery.wake))
    service.state.runtime = runtime
    service.state.store = store
    return service


# What `oppstream serve reminders` (and `python -m reminders`) runs.
SERVICE = Service("reminders", Settings, build_app, store="reminders_db_url")
