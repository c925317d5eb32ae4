"""The backtest: a recorded history replayed under candidate rules on a simulated clock,
what would have fired and been reclaimed, per rule and per team; nothing published."""

import io
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from contracts.envelope import Envelope
from contracts.rules import DEFAULT_RULES_FILE, Reminders, Rulebook
from contracts.schedule import TimerKind, start_of_day
from reminders.adapters import history as feed
from reminders.application import backtest
from reminders.domain.timers import command_id_for, reminder_id_for
from reminders.entrypoints import backtest as command
from services.reminders.tests.helpers import DAY, SHANGHAI, T0, Opportunity
from tests.support.principals import TOKENS
from tests.support.processes import write_auth_file

END = T0 + 120 * DAY


def run(rules: Rulebook, history: list[Envelope], start: Any = T0, end: Any = END) -> Any:
    return backtest.simulate(rules, SHANGHAI, history, start, end, END)


def test_a_stale_opportunity_climbs_the_whole_ladder_and_is_reclaimed_once(
    rules: Rulebook,
) -> None:
    o = Opportunity("KA", team_id="east")
    result = run(rules, [o.create(T0)])
    assert [(f.kind.value, f.fired_at - T0) for f in result.fired] == [
        ("follow_up", 7 * DAY),
        ("stale_warning", 14 * DAY),
        ("escalation", 21 * DAY),
        ("reclaim_due", 30 * DAY),
    ]
    [reclaim] = result.reclaims
    rid = reminder_id_for(o.id, "ka-default", T0 + 30 * DAY)
    assert reclaim.command_id == command_id_for(rid, "reclaim")  # what the live service sends
    assert (reclaim.team_id, reclaim.idle_days) == ("east", 30.0)


def test_a_reclaim_pools_the_opportunity_until_someone_claims_it(rules: Rulebook) -> None:
    o = Opportunity("SMB")
    history = [o.create(T0), o.follow_up(T0 + 20 * DAY), o.assign(T0 + 50 * DAY, "rep-2", True)]
    result = run(rules, history)
    assert [(f.kind.value, (f.fired_at - T0).days) for f in result.fired] == [
        ("follow_up", 3),
        ("stale_warning", 7),
        ("escalation", 10),
        ("reclaim_due", 14),
        # the follow-up at day 20 finds it pooled: no ladder until the claim at day 50
        ("follow_up", 53),
        ("stale_warning", 57),
        ("escalation", 60),
        ("reclaim_due", 64),
    ]
    assert {f.owner_id for f in result.fired if f.fired_at > T0 + 50 * DAY} == {"rep-2"}


def test_the_live_services_reclaims_are_replaced_by_the_simulations_own(
    rules: Rulebook,
) -> None:
    automatic, manual = Opportunity("KA"), Opportunity("KA")
    history = [
        automatic.create(T0),
        manual.create(T0),
        automatic.reclaim(T0 + 2 * DAY, command_id="old-rules"),  # the old rules' doing
        manual.reclaim(T0 + 2 * DAY),  # a manager's: history
    ]
    result = run(rules, history)
    assert [f.opportunity_id for f in result.reclaims] == [automatic.id]


def test_progress_and_pauses_in_the_history_move_the_timers(rules: Rulebook) -> None:
    o = Opportunity("SMB")
    history = [o.create(T0), o.follow_up(T0 + 2 * DAY), o.pause(T0 + 6 * DAY, date(2026, 11, 30))]
    result = run(rules, history)
    assert [(f.kind, f.fired_at) for f in result.fired] == [
        (TimerKind.FOLLOW_UP, T0 + 5 * DAY),
        (TimerKind.PAUSE_ENDED, start_of_day(date(2026, 11, 30), SHANGHAI)),
    ]


def test_only_what_fires_in_the_window_is_reported(rules: Rulebook) -> None:
    o = Opportunity("KA")
    result = run(rules, [o.create(T0)], start=T0 + 10 * DAY, end=T0 + 25 * DAY)
    assert [f.kind.value for f in result.fired] == ["stale_warning", "escalation"]


def test_the_clock_stops_at_now(rules: Rulebook) -> None:
    o = Opportunity("KA")
    result = backtest.simulate(rules, SHANGHAI, [o.create(T0)], T0, END, T0 + 15 * DAY)
    assert [f.kind.value for f in result.fired] == ["follow_up", "stale_warning"]
    assert result.until == T0 + 15 * DAY


def test_a_candidate_rule_changes_what_would_have_happened(rules: Rulebook) -> None:
    strict = rules.model_copy(
        update={
            "reminders": rules.reminders.model_copy(
                update={
                    "rules": tuple(
                        r.model_copy(update={"reclaim_after": timedelta(days=20)})
                        if r.id == "ka-default"
                        else r
                        for r in rules.reminders.rules
                    )
                }
            )
        }
    )
    o = Opportunity("KA")
    history = [o.create(T0), o.follow_up(T0 + 25 * DAY)]
    assert run(rules, history, end=T0 + 40 * DAY).reclaims == []
    [reclaim] = run(strict, history, end=T0 + 40 * DAY).reclaims
    assert reclaim.fired_at == T0 + 20 * DAY


def test_a_candidate_working_day_rule_counts_over_the_spring_festival(rules: Rulebook) -> None:
    working = rules.model_copy(
        update={
            "reminders": Reminders.model_validate(
                {
                    "rules": [
                        {
                            "id": "ka-working-days",
                            "match": {"tier": "KA"},
                            "follow_up_after": "5wd",
                            "reclaim_after": "15wd",
                        }
                    ]
                }
            )
        }
    )
    o = Opportunity("KA", team_id="east")
    progress = datetime(2027, 2, 1, 9, 0, tzinfo=SHANGHAI)  # Monday before 除夕
    result = backtest.simulate(
        working, SHANGHAI, [o.create(progress)], progress, progress + 60 * DAY, progress + 60 * DAY
    )
    # 2, 3, 4 Feb; 5–10 Feb off; 11, 12 Feb (5); 15–19 and 22–26 Feb (15).
    assert [(f.kind, f.fired_at) for f in result.fired] == [
        (TimerKind.FOLLOW_UP, datetime(2027, 2, 12, 9, 0, tzinfo=SHANGHAI)),
        (TimerKind.RECLAIM_DUE, datetime(2027, 2, 26, 9, 0, tzinfo=SHANGHAI)),
    ]
    [reclaim] = result.reclaims
    assert reclaim.rule_id == "ka-working-days"


def _feed(history: list[Envelope], seen: list[str]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.headers.get("authorization") != f"Bearer {TOKENS['service']}":
            return httpx.Response(401, json={"detail": "unauthenticated"})
        after, limit = int(request.url.params["after"]), int(request.url.params["limit"])
        items = [
            {"position": i + 1, "envelope": e.model_dump(mode="json")}
            for i, e in enumerate(history)
            if i + 1 > after
        ][:limit]
        next_after = items[-1]["position"] if items else after
        return httpx.Response(200, json={"after": after, "items": items, "next_after": next_after})

    return httpx.MockTransport(answer)


def test_the_history_is_read_page_by_page() -> None:
    history = [Opportunity("SMB").create(T0 + i * DAY) for i in range(7)]
    seen: list[str] = []
    found = feed.fetch_history("http://opp", TOKENS["service"], _feed(history, seen), page=3)
    assert [e.event_id for e in found] == [e.event_id for e in history]
    assert [s.split("?")[1] for s in seen] == [
        "after=0&limit=3",
        "after=3&limit=3",
        "after=6&limit=3",
        "after=7&limit=3",
    ]


def test_run_prints_per_rule_per_team_and_the_reclaims(rules: Rulebook) -> None:
    east, west = Opportunity("KA", team_id="east"), Opportunity("SMB", team_id="west")
    history = [east.create(T0), west.create(T0)]
    printed = io.StringIO()
    code = command.run(
        DEFAULT_RULES_FILE,
        date(2026, 11, 2),
        date(2027, 2, 1),
        "http://opp",
        TOKENS["service"],
        zone=SHANGHAI,
        now=END,
        console=Console(file=printed, width=220),
        transport=_feed(history, []),
    )
    text = printed.getvalue()
    assert code == 0
    assert "Fired per rule" in text
    assert "Fired per team" in text
    assert "Reclaimed into the pool (2)" in text
    assert rules.version in text
    assert "Nothing was published" in text
    ka_row = next(line for line in text.splitlines() if "ka-default" in line and "│" in line)
    assert [cell.strip() for cell in ka_row.split("│")[2:7]] == ["1", "1", "1", "1", "0"]


def test_run_refuses_a_bad_rules_file_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    text = DEFAULT_RULES_FILE.read_text(encoding="utf-8").replace(
        "reclaim_after: P30D", "reclaim_after: soon"
    )
    bad.write_text(text, encoding="utf-8")
    printed = io.StringIO()
    code = command.run(
        bad, date(2026, 11, 2), date(2026, 12, 1), "http://opp", "t", console=Console(file=printed)
    )
    assert code == 2
    assert "reclaim_after" in printed.getvalue()
    assert "line" in printed.getvalue()


def test_run_says_when_the_history_cannot_be_read() -> None:
    printed = io.StringIO()
    code = command.run(
        DEFAULT_RULES_FILE,
        date(2026, 11, 2),
        date(2026, 12, 1),
        "http://opp",
        "not-the-token",
        zone=SHANGHAI,
        console=Console(file=printed, width=200),
        transport=_feed([], []),
    )
    assert code == 1
    assert "401" in printed.getvalue()


def test_run_refuses_an_end_before_the_start() -> None:
    printed = io.StringIO()
    code = command.run(
        DEFAULT_RULES_FILE,
        date(2026, 12, 1),
        date(2026, 11, 2),
        "http://opp",
        "t",
        zone=SHANGHAI,
        console=Console(file=printed),
    )
    assert code == 2


def test_both_dates_are_whole_days_in_the_business_zone() -> None:
    o = Opportunity("SMB")
    history = [o.create(start_of_day(date(2026, 11, 1), SHANGHAI))]
    printed = io.StringIO()
    command.run(
        DEFAULT_RULES_FILE,
        date(2026, 11, 4),
        date(2026, 11, 4),  # the follow-up falls due at 00:00 on the 4th, Shanghai time
        "http://opp",
        TOKENS["service"],
        zone=SHANGHAI,
        now=END,
        console=Console(file=printed, width=220),
        transport=_feed(history, []),
    )
    row = next(line for line in printed.getvalue().splitlines() if "smb-default" in line)
    assert [cell.strip() for cell in row.split("│")[2:3]] == ["1"]


@pytest.mark.parametrize("role", ["service", "admin"])
def test_the_history_is_read_with_a_service_or_admin_token_from_the_auth_file(
    tmp_path: Path, role: str
) -> None:
    path = write_auth_file(tmp_path / "auth.json")
    if role == "admin":
        data = json.loads(path.read_text())
        data["principals"] = [p for p in data["principals"] if p["role"] != "service"]
        path.write_text(json.dumps(data))
    assert feed.service_token(path) == TOKENS[role]
