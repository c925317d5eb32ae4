"""The opportunity service's readiness (/readyz): the event store and, with Kafka configured,
the broker, asked at the same time and each for at most READINESS_SECONDS."""

import asyncio
from typing import Any

from chassis.http import KAFKA_NOT_CONFIGURED, BoundedCheck, Readiness
from opportunity.adapters.messaging import Messaging
from opportunity.application.app import OpportunityApp


def readiness(app: OpportunityApp, messaging: Messaging | None) -> Readiness:
    last_position = BoundedCheck(app.last_position)

    async def event_store() -> dict[str, Any]:
        try:
            return {"last_position": await last_position(), "event_store": "ok"}
        except Exception as exc:  # any store failure means not ready
            return {"event_store": f"unavailable: {type(exc).__name__}"}

    async def kafka() -> dict[str, Any]:
        return {"kafka": KAFKA_NOT_CONFIGURED} if messaging is None else await messaging.status()

    async def ready() -> tuple[bool, dict[str, Any]]:
        """Ready once the event store answers and, with Kafka configured, the broker does;
        else 503, `down` naming which of them does not answer (within a second)."""
        store, broker = await asyncio.gather(event_store(), kafka())
        detail = {**store, **broker}
        down = [
            name
            for name, answers in (
                ("event store", detail["event_store"] == "ok"),
                ("broker", detail.get("broker", "connected") == "connected"),
            )
            if not answers
        ]
        return not down, {**detail, "down": down}

    return ready
