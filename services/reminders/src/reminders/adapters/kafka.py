"""The Kafka publisher of fired timers' messages (reminders.application.ports.Publisher)."""

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer

from chassis.kafka.producing import Outgoing, produce_in_order

log = logging.getLogger(__name__)


class KafkaPublisher:
    """Sends each partition's messages in as few produce requests as fit, one after the
    other, all partitions at once; a failure drops the producer (the next call makes a new
    one) and the caller keeps the rows pending."""

    def __init__(self, make_producer: Callable[[], AIOKafkaProducer]) -> None:
        self._make_producer = make_producer
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, list[int]] = {}

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        if not messages:
            return
        producer = await self._ensure()
        try:
            await produce_in_order(producer, messages, self._partitions)
        except BaseException:
            await self.close()
            raise

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
