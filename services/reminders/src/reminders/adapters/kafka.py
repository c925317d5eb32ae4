"""The Kafka publisher of fired timers' messages (reminders.application.ports.Publisher)."""

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanContext, Tracer

from chassis.kafka.logbook import LogBook, LogProbe, Partition, log_probe
from chassis.kafka.producing import Landed, Outgoing, new_producer, produce_in_order
from chassis.kafka.traces import publishing
from chassis.settings import OppstreamSettings
from chassis.tracing import RecentSpans

log = logging.getLogger(__name__)

LOG_CHECK_SECONDS = 5.0  # how often an idle scheduler asks whether the broker lost its log


def kafka_publisher(
    settings: OppstreamSettings,
    tracer: Tracer | None = None,
    handled: RecentSpans[bytes] | None = None,
) -> "KafkaPublisher":
    return KafkaPublisher(
        lambda: new_producer(settings), log_probe(settings, LOG_CHECK_SECONDS), tracer, handled
    )


class KafkaPublisher:
    """Sends each partition's messages in as few produce requests as fit, one after the
    other, all partitions at once; a failure drops the producer (the next call makes a new
    one) and the caller keeps the rows pending. Asks the broker, at most every `probe`'s
    interval, whether it still has what it acknowledged. With a tracer, each message is
    published in a span, the child of the span that last handled an event of its opportunity
    (`handled`; forgotten once published: a later reminder starts a new trace), its
    traceparent on the record."""

    def __init__(
        self,
        make_producer: Callable[[], AIOKafkaProducer],
        probe: LogProbe,
        tracer: Tracer | None = None,
        handled: RecentSpans[bytes] | None = None,
    ) -> None:
        self._make_producer, self._probe = make_producer, probe
        self._tracer = tracer
        self._handled: RecentSpans[bytes] = RecentSpans() if handled is None else handled
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, list[int]] = {}

    async def publish(self, messages: Sequence[Outgoing]) -> dict[Partition, Landed]:
        if not messages:
            return {}
        producer = await self._ensure()
        causes: dict[bytes, SpanContext | None] = {}
        try:
            with publishing(self._tracer) as spans:
                if spans is not None:
                    causes = {m.key: self._handled.get(m.key) for m in messages}
                    messages = [spans.traced(m, causes[m.key]) for m in messages]
                landed = await produce_in_order(producer, messages, self._partitions)
        except BaseException:
            await self.close()
            raise
        for key in causes:  # published: what fires next for them starts a trace of its own
            self._handled.take(key)
        return landed

    async def lost(self, book: LogBook) -> list[str]:
        if not self._probe.due():
            return []
        lost = await self._probe.lost(book)
        if lost:
            # The topics as configured (they may be gone), and partitions learnt afresh.
            await self._probe.create_topics()
            await self.close()
        return lost

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        self._partitions.clear()
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=5)
            except Exception as exc:  # a producer that cannot even stop is dropped anyway
                log.debug("publisher: dropping producer: %s", exc)

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._make_producer()
            await producer.start()
            self._producer = producer
        return self._producer
