"""A service's FastStream broker and how it connects: in the background, trying again while
Kafka (or the store) is down, so that the HTTP API answers meanwhile."""

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider

from chassis.retrying import Backoff
from chassis.settings import OppstreamSettings

log = logging.getLogger(__name__)

FIRST_PAUSE = 0.2
LONGEST_PAUSE = 5.0


def new_broker(
    bootstrap: str, settings: OppstreamSettings, tracer_provider: TracerProvider | None = None
) -> KafkaBroker:
    """The service's broker; with a `tracer_provider`, FastStream's telemetry middleware
    traces what it publishes (the traceparent on the record) and each batch it hands over
    (chassis.kafka.traces continues each record's own trace)."""
    return KafkaBroker(
        bootstrap,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        log_level=logging.DEBUG,
        middlewares=()
        if tracer_provider is None
        else (KafkaTelemetryMiddleware(tracer_provider=tracer_provider),),
    )


async def start_broker(broker: KafkaBroker) -> None:
    """Start the broker's consumers; when that fails, stop what did start and raise."""
    try:
        await broker.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await broker.stop()
        raise


async def keep_trying(what: str, step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` until it succeeds, pausing twice as long after each failure (up to
    LONGEST_PAUSE): a service started while its broker or store is down keeps answering
    HTTP and keeps trying."""
    backoff = Backoff(FIRST_PAUSE, LONGEST_PAUSE)
    while True:
        try:
            await step()
            return
        except Exception as exc:
            await backoff.wait(what, str(exc))


class BrokerInBackground(ABC):
    """A service's Kafka side: its broker, connected and put to work by a task of its own
    from `start()` until `stop()`."""

    def __init__(
        self,
        bootstrap: str,
        settings: OppstreamSettings,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.broker = new_broker(bootstrap, settings, tracer_provider)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.run_aside(self._run())

    def run_aside(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` until `stop()`."""
        self._tasks.append(asyncio.create_task(work))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.broker.stop()

    @abstractmethod
    async def _run(self) -> None:
        """Connect (`keep_trying`), then work until cancelled."""
