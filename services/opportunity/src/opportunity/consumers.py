"""The opportunity service's Kafka consumers, as a FastStream router built from its
dependencies: qualified leads (group `opportunity.intake`) and commands (group
`opportunity.commands`).

Each handler takes a batch of records, makes every result durable and answered, and only
then commits the batch's explicit offsets (never the consumer's whole position: FastStream's
ack-first default could lose a message, faststream #2618/#1980; a commit after a rebalance
fails, aiokafka #933 — the next owner then takes the records again, which is harmless
because every result is idempotent). When a batch cannot be made durable (the store or the
broker is down), the consumer seeks back to the batch's first records and tries again.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from contracts import topics
from opportunity.command_intake import CommandIntake
from opportunity.intake import LeadIntake
from opportunity.poison import ConsumedRecord

log = logging.getLogger(__name__)

RETRY_PAUSE = 1.0

Handler = Callable[[list[Any], KafkaMessage], Awaitable[None]]


async def _raw(message: Any) -> Any:
    """Hand records over as bytes: the handlers decide what is a message and what is poison."""
    return message.body


def build_consumers(
    leads: LeadIntake,
    commands: CommandIntake,
    fetch_max_wait_ms: int,
    session_timeout_ms: int,
    groups: tuple[str, str] = ("opportunity.intake", "opportunity.commands"),
    max_records: int = 500,
) -> KafkaRouter:
    """Consumers of qualified leads and of commands, in the (intake, commands) groups."""
    router = KafkaRouter()

    def subscriber(topic: str, group: str) -> Callable[[Handler], object]:
        return router.subscriber(
            topic,
            group_id=group,
            batch=True,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            max_records=max_records,
            fetch_max_wait_ms=fetch_max_wait_ms,
            batch_timeout_ms=max(fetch_max_wait_ms, 10),
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 10, 500),
            # A member that heartbeats but never rejoins (a stuck copy) must not hold a
            # rebalance for aiokafka's default five minutes.
            rebalance_timeout_ms=2 * session_timeout_ms,
            decoder=_raw,
        )

    @subscriber(topics.LEADS_QUALIFIED, groups[0])
    async def take_leads(_: list[Any], message: KafkaMessage) -> None:
        await _take(message, leads.take)

    @subscriber(topics.OPPORTUNITY_COMMANDS, groups[1])
    async def take_commands(_: list[Any], message: KafkaMessage) -> None:
        await _take(message, commands.take)

    return router


async def _take(
    message: KafkaMessage, take: Callable[[Sequence[ConsumedRecord]], Awaitable[None]]
) -> None:
    records: Sequence[Any] = message.raw_message
    if not records:
        return
    try:
        await take(records)
    except Exception as exc:  # not durable yet: take the same records again after a pause
        log.warning("consumer: %s; taking %d records again", exc, len(records))
        await message.nack()
        await asyncio.sleep(RETRY_PAUSE)
        return
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    try:
        consumer: Any = message.consumer
        await consumer.commit(offsets)
    except KafkaError as exc:  # a rebalance took the partitions: the next owner redoes them
        log.info("consumer: commit refused (%s); the records will be taken again", exc)
