"""The projections' Kafka side: the events topic and the consumer, connected in the background.

The HTTP API serves the read model while the broker is down.
"""

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from chassis.http import READINESS_SECONDS
from chassis.kafka.broker import BrokerInBackground, keep_trying, start_broker
from chassis.kafka.producing import ensure_topics
from chassis.tracing import tracer_of
from projections.adapters.store import Store
from projections.entrypoints.consumers import build_consumer
from projections.entrypoints.instruments import Instruments
from projections.settings import Settings


class Messaging(BrokerInBackground):
    def __init__(
        self,
        bootstrap: str,
        settings: Settings,
        store: Store,
        metrics: Instruments,
        on_stored: Callable[[], None] | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        super().__init__(bootstrap, settings, tracer_provider)
        self._settings = settings
        router, self.seeker, self._watch_stranded = build_consumer(
            store,
            metrics,
            settings.projections_topic,
            settings.projections_group,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            max_records=settings.projections_batch_max,
            on_stored=on_stored,
            tracer=tracer_of(tracer_provider, "projections"),
        )
        self.broker.include_router(router)
        self.connected = False

    async def _run(self) -> None:
        await keep_trying("kafka", self._connect)

    async def _connect(self) -> None:
        # The opportunity service usually has created the events topic already.
        await ensure_topics(self._settings, [self._settings.projections_topic])
        await start_broker(self.broker)
        self.run_aside(self._watch_stranded())
        self.connected = True

    async def status(self) -> dict[str, Any]:
        reachable = self.connected and await self.broker.ping(timeout=READINESS_SECONDS)
        return {
            "broker": "connected" if reachable else "unavailable",
            "consumer": "joined" if self.seeker.joined.is_set() else "joining",
            "assigned_partitions": sorted(tp.partition for tp in self.seeker.assigned),
            "reading_again": self.seeker.watch.status(),
        }
