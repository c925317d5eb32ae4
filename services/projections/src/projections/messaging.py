"""The projections' Kafka side: the events topic and the consumer, connected in the background.

The HTTP API serves the read model while the broker is down.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from projections.consumers import build_consumer
from projections.metrics import Metrics
from projections.settings import Settings
from projections.store import Store

log = logging.getLogger(__name__)


async def ensure_topic(settings: Settings) -> None:
    """Create the events topic if nobody has yet (the opportunity service usually has)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await admin.start()
    try:
        if settings.projections_topic not in set(await admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            settings.projections_topic,
                            settings.topic_partitions,
                            settings.topic_replication,
                        )
                    ]
                )
    finally:
        await admin.close()


class Messaging:
    def __init__(
        self,
        bootstrap: str,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self.broker = KafkaBroker(
            bootstrap,
            request_timeout_ms=settings.kafka_request_timeout_ms,
            log_level=logging.DEBUG,
        )
        router, self.seeker = build_consumer(
            store,
            metrics,
            settings.projections_topic,
            settings.projections_group,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            max_records=settings.projections_batch_max,
            on_stored=on_stored,
        )
        self.broker.include_router(router)
        self.connected = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.broker.stop()

    async def _run(self) -> None:
        backoff = 0.2
        while not self.connected:
            try:
                await ensure_topic(self._settings)
                await self.broker.start()
                self.connected = True
            except Exception as exc:  # broker down at start: keep serving HTTP, keep trying
                log.warning("kafka: %s; connecting again in %.1f s", exc, backoff)
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def status(self) -> dict[str, Any]:
        reachable = self.connected and await self.broker.ping(timeout=2.0)
        return {
            "broker": "connected" if reachable else "unavailable",
            "consumer": "joined" if self.seeker.joined.is_set() else "joining",
            "assigned_partitions": sorted(tp.partition for tp in self.seeker.assigned),
        }
