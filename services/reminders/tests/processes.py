"""The reminders service as a real process (`oppstream serve reminders`), and what the
end-to-end tests share: importing an opportunity, reading the reminders topic."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from contracts import topics
from contracts.reminders import Reminder
from tests.support.kafka import TestBroker
from tests.support.principals import auth, customer
from tests.support.processes import Service, service_env, start_service
from tests.support.topics import Offsets, collect, keyed

KAFKA_SETTINGS = {
    "topic_partitions": "6",
    "kafka_session_timeout_ms": "6000",
    "kafka_fetch_max_wait_ms": "10",
}
READY_TIMEOUT = 60.0


def reminders_env(
    workdir: Path, kafka: TestBroker, db_url: str, group: str, **settings: str
) -> dict[str, str]:
    return service_env(
        workdir,
        reminders_db_url=db_url,
        kafka_bootstrap=kafka.bootstrap,
        reminders_group=group,
        reminders_tick_ms="100",
        **{**KAFKA_SETTINGS, **settings},
    )


def opportunity_env(workdir: Path, kafka: TestBroker, store_url: str) -> dict[str, str]:
    return service_env(
        workdir, eventstore_url=store_url, kafka_bootstrap=kafka.bootstrap, **KAFKA_SETTINGS
    )


def start_reminders(env: Mapping[str, str], workdir: Path) -> Service:
    """`oppstream serve reminders` on a free port; returned once /readyz is 200 (store
    migrated, broker connected, consumer joined its group)."""
    return start_service("reminders", env, workdir, ready_timeout=READY_TIMEOUT)


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def import_opportunity(
    client: httpx.Client,
    tier: str,
    idle_days: float,
    owner_id: str = "rep-1",
    team_id: str = "east",
    **extra: Any,
) -> dict[str, Any]:
    """Create an opportunity as the `service` principal, as if recorded `idle_days` ago."""
    answer = client.post(
        "/opportunities",
        json={
            "type": "new",
            "customer": customer(tier),
            "owner_id": owner_id,
            "team_id": team_id,
            "occurred_at": ago(idle_days),
            **extra,
        },
        headers=auth("service"),
    )
    assert answer.status_code == 201, answer.text
    state: dict[str, Any] = answer.json()
    return state


def reminders_of(
    bootstrap: str, start: Offsets, count: int, *opportunity_ids: str, deadline: float = 60.0
) -> list[Reminder]:
    """The reminders published after `start` for these opportunities, once `count` distinct
    reminder ids arrived (with every repeat already there)."""
    records = collect(
        bootstrap,
        topics.REMINDERS,
        keyed(*opportunity_ids),
        count,
        deadline,
        start=start,
        distinct=lambda r: r.json()["reminder_id"],
    )
    return [Reminder.model_validate_json(r.value or b"") for r in records]
