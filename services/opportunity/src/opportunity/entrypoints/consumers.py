"""The opportunity service's Kafka consumers, as a FastStream router built from its
dependencies: qualified leads (group `opportunity.intake`) and commands (group
`opportunity.commands`).

Each handler takes a batch of records, makes every result durable and answered, and only
then commits the batch's explicit offsets (never the consumer's whole position: FastStream's
ack-first default could lose a message, faststream #2618/#1980; a commit after a rebalance
fails, aiokafka #933 — the next owner then takes the records again, which is harmless
because every result is idempotent). When a batch cannot be made durable (the store or the
broker is down), the consumer seeks back to the batch's first records and tries again. A
partition that ends before where the consumer stood (the broker lost its log, and the group its
commits) is said and counted (chassis.kafka.logwatch); it is read from the new log's beginning.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from opentelemetry.trace import Span, Tracer

from chassis.kafka.consuming import (
    ConsumedRecord,
    StrandedCheck,
    batch_subscriber,
    commit_batch,
    high_watermark_of,
    restart_lost_logs,
)
from chassis.kafka.logwatch import LogWatch
from chassis.kafka.traces import consuming
from contracts import topics
from opportunity.entrypoints.command_intake import CommandIntake
from opportunity.entrypoints.lead_intake import LeadIntake

log = logging.getLogger(__name__)

RETRY_PAUSE = 1.0

# Takes a batch of records; traced, with the span of each record (none: tracing is off).
Take = Callable[[Sequence[ConsumedRecord], Sequence[Span]], Awaitable[None]]


def build_consumers(
    leads: LeadIntake,
    commands: CommandIntake,
    watch: LogWatch,
    fetch_max_wait_ms: int,
    session_timeout_ms: int,
    groups: tuple[str, str] = ("opportunity.intake", "opportunity.commands"),
    tracer: Tracer | None = None,
    max_records: int = 500,
) -> tuple[KafkaRouter, list[Callable[[], Coroutine[Any, Any, None]]]]:
    """Consumers of qualified leads and of commands, in the (intake, commands) groups, and
    the checks of their partitions stranded past the end of a new log (to run beside the
    broker). With a tracer, each record's handling is a span (chassis.kafka.traces)."""
    router = KafkaRouter()

    def subscriber(topic: str, group: str) -> BatchSubscriber:
        return batch_subscriber(
            router,
            topic,
            group,
            fetch_max_wait_ms=fetch_max_wait_ms,
            session_timeout_ms=session_timeout_ms,
            max_records=max_records,
        )

    stranded: list[Callable[[], Coroutine[Any, Any, None]]] = []
    for topic, group, take in (
        (topics.LEADS_QUALIFIED, groups[0], leads.take),
        (topics.OPPORTUNITY_COMMANDS, groups[1], commands.take),
    ):
        stranded.append(_consume(subscriber(topic, group), take, watch, tracer))
    return router, stranded


def _consume(
    subscriber: BatchSubscriber, take: Take, watch: LogWatch, tracer: Tracer | None
) -> Callable[[], Coroutine[Any, Any, None]]:
    """`take` each batch of the subscriber; the check of its stranded partitions."""
    stranded = StrandedCheck(lambda consumer: restart_lost_logs(watch, consumer, []))

    @subscriber
    async def handle(_: list[Any], message: KafkaMessage) -> None:
        async with stranded.lock:
            await _take(message, take, watch, tracer)

    return lambda: stranded.run(subscriber)


async def _take(message: KafkaMessage, take: Take, watch: LogWatch, tracer: Tracer | None) -> None:
    consumer: Any = message.consumer
    # A partition on a lost log (records before where this consumer stood, or a log that ends
    # before where the group's commit left it) is read from the new log's beginning.
    records: Sequence[Any] = await restart_lost_logs(watch, consumer, message.raw_message)
    if not records:
        return
    try:
        with consuming(tracer, "opportunity handle", records) as spans:
            await take(records, spans)
    except Exception as exc:  # not durable yet: take the same records again after a pause
        log.warning("consumer: %s; taking %d records again", exc, len(records))
        await message.nack()
        await asyncio.sleep(RETRY_PAUSE)
        return
    watch.took(records)
    watch.caught_up(high_watermark_of(consumer))
    try:
        await commit_batch(message, records)
    except KafkaError as exc:  # a rebalance took the partitions: the next owner redoes them
        log.info("consumer: commit refused (%s); the records will be taken again", exc)
