"""The opportunity service's Kafka side: topics, the lead and command consumers, the relay.

It connects in the background, so the HTTP API keeps accepting commands while the broker is
down; the relay catches up once it is back.
"""

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from chassis.http import READINESS_SECONDS
from chassis.kafka.broker import BrokerInBackground, keep_trying, start_broker
from chassis.kafka.logwatch import LogWatch
from chassis.kafka.producing import ensure_topics, new_producer
from opportunity.application import OpportunityApp
from opportunity.command_intake import CommandIntake
from opportunity.consumers import build_consumers
from opportunity.groupcommit import GroupCommitter
from opportunity.intake import LeadIntake
from opportunity.leadership import FileLeadership, Leadership, PostgresLeadership
from opportunity.metrics import Metrics
from opportunity.publishing import BrokerPublisher
from opportunity.relay import Relay, RelayMetrics
from opportunity.relay_log import LogProbe
from opportunity.settings import Settings


def leadership_for(eventstore_url: str) -> Leadership:
    """The relay lock of this event store."""
    if eventstore_url.startswith("sqlite"):
        return FileLeadership(Path(eventstore_url.removeprefix("sqlite:///") + ".relay.lock"))
    conninfo = "postgresql://" + eventstore_url.split("://", 1)[1]
    return PostgresLeadership(conninfo, "oppstream.relay")


def build_relay(
    bootstrap: str,
    settings: Settings,
    app: OpportunityApp,
    engine: sa.Engine,
    leadership: Leadership,
    metrics: Metrics,
) -> Relay:
    return Relay(
        app,
        engine,
        lambda: new_producer(settings),
        leadership,
        RelayMetrics(
            metrics.relayed, metrics.relay_lag, metrics.relay_leader, metrics.relay_log_losses
        ),
        settings.relay_batch,
        settings.relay_idle_poll_ms / 1000,
        LogProbe(
            lambda: AIOKafkaConsumer(
                bootstrap_servers=bootstrap,
                request_timeout_ms=settings.kafka_request_timeout_ms,
                enable_auto_commit=False,
            ),
            lambda: ensure_topics(settings),
            settings.relay_log_check_ms / 1000,
        ),
    )


class Messaging(BrokerInBackground):
    def __init__(
        self,
        bootstrap: str,
        settings: Settings,
        app: OpportunityApp,
        committer: GroupCommitter,
        engine: sa.Engine,
        clock: Callable[[], datetime],
        metrics: Metrics,
    ) -> None:
        super().__init__(bootstrap, settings)
        self._settings = settings
        publisher = BrokerPublisher(self.broker)
        leads = LeadIntake(app, committer, publisher, clock, metrics.leads)
        commands = CommandIntake(app, committer, publisher, clock, metrics.remote_commands)
        self.watch = LogWatch("opportunity", metrics.log, own_positions=False)
        self.broker.include_router(
            build_consumers(
                leads,
                commands,
                self.watch,
                settings.kafka_fetch_max_wait_ms,
                settings.kafka_session_timeout_ms,
                (settings.intake_group, settings.commands_group),
            )
        )
        self.relay = build_relay(
            bootstrap, settings, app, engine, leadership_for(settings.eventstore_url), metrics
        )
        committer.on_saved = self.relay.wake
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
        self.consuming = True
