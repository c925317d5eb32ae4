"""The demo's delivery parts without the whole system: its rules send every team's reminders
to the demo's webhook sink, escalations to the manager's channel and to a front end that is
down; a reminders service on those rules delivers, retries and parks, and the summary says so
with no signature failure."""

import asyncio
from pathlib import Path

import pytest
from rich.console import Console

from contracts.rules import load_rulebook
from oppstream.scenes import demo_rules
from oppstream.sink import DOWN, print_deliveries, summarise, webhook_sink
from reminders.adapters.store import Store
from services.reminders.tests.delivery_support import harness_on
from services.reminders.tests.helpers import DAY, T0, Opportunity
from tests.support.principals import TOKENS
from tests.support.processes import service_env, start_service

pytestmark = pytest.mark.slow


def test_the_demo_rules_deliver_to_the_sink_and_the_summary_counts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPPSTREAM_RULES_FILE", "unset by the test")
    monkeypatch.delenv("OPPSTREAM_RULES_FILE")
    with webhook_sink("demo-secret-of-the-test") as sink:
        rules = demo_rules(tmp_path / "var", sink)
        written = load_rulebook(tmp_path / "var" / "demo-rules.yaml")
        assert written.delivery == rules.delivery
        assert rules.delivery.channels_for("escalation", "east", "KA") == (
            "east-team-webhook",
            "east-manager-webhook",
            "crm-front-end-down",
        )
        assert rules.delivery.channels_for("follow_up", "west", "SMB") == ("west-team-webhook",)

        db = f"sqlite:///{tmp_path}/reminders.db"
        store = Store(db)
        store.migrate()
        harness = harness_on(store, rules)
        for i in range(8):
            harness.feed(Opportunity("KA", opportunity_id=f"demo-{i}").create(T0))
        fired = asyncio.run(harness.at(T0 + 21 * DAY))
        assert [r.kind.value for r in fired] == ["escalation"] * 8
        store.close()

        env = service_env(
            tmp_path, reminders_db_url=db, rules_file=str(tmp_path / "var" / "demo-rules.yaml")
        )
        service = start_service("reminders", env, tmp_path / "svc", consumers_started=False)
        try:
            summary = summarise(sink, service.url, TOKENS["admin"])
        finally:
            service.stop()
    assert summary.pending == 0
    assert summary.by_path == {"/team/east": 8, "/manager/east": 8}
    assert summary.delivered == 16
    assert summary.parked == 8
    # Two failed attempts of each parked delivery, and the team channels' bad moments.
    assert summary.retried >= 16
    assert summary.signature_failures == 0
    console = Console(record=True, width=120)
    print_deliveries(console, summary)
    text = console.export_text()
    assert "signature failures" in text
    assert DOWN in text
