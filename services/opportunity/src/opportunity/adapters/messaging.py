"""The opportunity service's Kafka side: topics, the consumers, the relay.

It connects in the background, so the HTTP API keeps accepting commands while the broker is
down; the relay catches up once it is back.
"""

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from faststream.kafka import KafkaRouter
from opentelemetry.sdk.trace import TracerProvider

from chassis.http import READINESS_SECONDS
from chassis.kafka.broker import BrokerInBackground, keep_trying, start_broker
from chassis.kafka.logwatch import LogMetrics, LogWatch
from chassis.kafka.producing import ensure_topics
from opportunity.adapters.publishing import BrokerPublisher, Publisher
from opportunity.adapters.relay import Relay
from opportunity.settings import Settings

# The consumers, given what they publish through and what watches their partitions' logs.
# The consumers' router, and the checks of their stranded partitions to run beside them.
Consumed = tuple[KafkaRouter, list[Callable[[], Coroutine[Any, Any, None]]]]
Consumers = Callable[[Publisher, LogWatch], Consumed]


class Messaging(BrokerInBackground):
    def __init__(
        self,
        bootstrap: str,
        settings: Settings,
        relay: Relay,
        consumers: Consumers,
        log_metrics: LogMetrics,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        super().__init__(bootstrap, settings, tracer_provider)
        self._settings = settings
        self.watch = LogWatch("opportunity", log_metrics, own_positions=False)
        router, self._watch_stranded = consumers(BrokerPublisher(self.broker), self.watch)
        self.broker.include_router(router)
        self.relay = relay
        self.connected = False
        self.consuming = False

    async def _run(self) -> None:
        """Topics first (the broker answers: ready), then the relay at once and the consumers
        beside it: after a crash a consumer group may take a session timeout or two to let
        the new member in, and events must not wait for that."""
        await keep_trying("kafka", lambda: ensure_topics(self._settings))
        self.connected = True
        relay = asyncio.create_task(self.relay.run())
        try:
            await keep_trying("kafka consumers", self._start_consumers)
            await relay
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay

    async def status(self) -> dict[str, Any]:
        # Until the consumers have started, the broker answered the topic check moments ago.
        reachable = self.connected and (
            not self.consuming or await self.broker.ping(timeout=READINESS_SECONDS)
        )
        return {
            "broker": "connected" if reachable else "unavailable",
            "consumers": "started" if self.consuming else "joining their groups",
            "relay": {
                "leader": self.relay.is_leader,
                "lag": self.relay.lag,
                "error": self.relay.last_error,
            },
            "reading_again": self.watch.status(),
        }

    async def _start_consumers(self) -> None:
        await start_broker(self.broker)
        for watch_stranded in self._watch_stranded:
            self.run_aside(watch_stranded())
        self.consuming = True
