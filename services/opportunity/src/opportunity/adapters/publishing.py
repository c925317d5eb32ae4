"""What the consumers need to send a record: a topic, a key, bytes and headers."""

from typing import Protocol

from faststream.kafka import KafkaBroker


class Publisher(Protocol):
    async def publish(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str]
    ) -> None: ...


class BrokerPublisher:
    """Publishes through the FastStream broker the consumers run on."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str]
    ) -> None:
        await self._broker.publish(value, topic=topic, key=key, headers=headers)
