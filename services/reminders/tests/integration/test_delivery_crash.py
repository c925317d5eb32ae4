"""`kill -9` of the reminders service between sending a delivery and recording the answer:
after a restart the sink sees at most one more send, under the same Idempotency-Key, and the
store has the delivery delivered exactly once."""

from pathlib import Path

import pytest
import yaml

from contracts.rules import Rulebook
from reminders.adapters.store import Store
from reminders.domain.delivery import DELIVERED, PENDING
from services.reminders.tests.delivery_support import (
    a_follow_up_fired,
    deliveries_of,
    harness_on,
    webhook,
    with_delivery,
)
from services.reminders.tests.sink import HANG, running_sink
from tests.support.polling import wait_until
from tests.support.processes import service_env, start_service

pytestmark = pytest.mark.slow


def _rules_file(rules: Rulebook, path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(rules.model_dump(mode="json"), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return path


async def test_kill_9_between_send_and_record_sends_once_more_under_the_same_key(
    rules: Rulebook, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path}/reminders.db"
    # The sink holds its answer to the first send until the service is dead.
    with running_sink(held=[HANG]) as sink:
        rules = with_delivery(rules, webhook("held", sink.url("/held")), attempts=5, timeout="2s")
        store = Store(db)
        store.migrate()
        reminder_id = await a_follow_up_fired(harness_on(store, rules))
        env = service_env(
            tmp_path,
            reminders_db_url=db,
            rules_file=str(_rules_file(rules, tmp_path / "rules.yaml")),
            reminders_tick_ms="50",
        )
        first = start_service("reminders", env, tmp_path / "first", consumers_started=False)
        try:
            wait_until(lambda: sink.at("/held"), 30, "the first send reached the sink")
        finally:
            first.kill_hard()
        sink.release.set()
        [row] = deliveries_of(store, reminder_id)
        assert (row["status"], row["attempts"]) == (PENDING, 1), "the answer was recorded"

        second = start_service("reminders", env, tmp_path / "second", consumers_started=False)
        try:
            wait_until(
                lambda: deliveries_of(store, reminder_id)[0]["status"] == DELIVERED,
                30,
                "the delivery recorded delivered after the restart",
            )
        finally:
            second.stop()
        sends = sink.at("/held")
        assert len(sends) == 2
        assert {s.headers["Idempotency-Key"] for s in sends} == {reminder_id}
        assert sends[0].body == sends[1].body
        [row] = deliveries_of(store, reminder_id)
        assert (row["status"], row["attempts"]) == (DELIVERED, 2)
        store.close()
