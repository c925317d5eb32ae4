"""The pure projection step: one event → new state, visits opened and closed, history row."""

from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from contracts.rules import load_rulebook
from projections.adapters.feed import read_listed
from projections.adapters.rows import HISTORY_COLUMNS
from projections.domain.projection import Projector
from projections.domain.stage_index import PipelineIndex
from projections.domain.state import OpportunityState
from services.projections.tests.history import History, day

DAY = 86400.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
PROJECTOR = Projector(PipelineIndex(load_rulebook()), SHANGHAI)


def replay(h: History) -> tuple[OpportunityState, list[dict[str, Any]], list[dict[str, Any]]]:
    """The final state, every visit row in its last form, every history row."""
    state: OpportunityState | None = None
    visits: dict[int, dict[str, Any]] = {}
    history = []
    for envelope in h.envelopes:
        applied = PROJECTOR.apply(state, read_listed(envelope))
        assert applied is not None
        state = applied.state
        for row in applied.visits:
            visits[row["visit_no"]] = row
        history.append(dict(zip(HISTORY_COLUMNS, applied.history, strict=True)))
    assert state is not None
    return state, [visits[k] for k in sorted(visits)], history


def test_creation_keeps_the_rule_that_classified_the_customer() -> None:
    classified, _, _ = replay(History(day(0), classified_by="ka-revenue"))
    before, _, _ = replay(History(day(0)))  # recorded before classification: no such key

    assert (classified.classified_by, before.classified_by) == ("ka-revenue", None)


def test_creation_opens_a_visit_of_the_first_stage() -> None:
    state, visits, _ = replay(History(day(0), tier="SMB", ownership="PRIVATE"))

    assert (state.status, state.stage, state.stage_index, state.version) == (
        "open",
        "initial_contact",
        0,
        1,
    )
    assert (state.tier, state.ownership, state.created_month) == ("SMB", "PRIVATE", "2026-03")
    assert visits == [
        {
            "opportunity_id": state.id,
            "visit_no": 1,
            "pipeline_id": "new",
            "stage": "initial_contact",
            "stage_index": 0,
            "entered_at": day(0),
            "entered_version": 1,
            "entry_kind": "created",
            "exited_at": None,
            "exited_version": None,
            "exit_kind": None,
            "exited_to": None,
            "paused_seconds": 0.0,
            "deferred_seconds": 0.0,
            "dwell_seconds": None,
            "paused_working_days": 0.0,
            "working_days": None,
            "type": "new",
            "tier": "SMB",
            "ownership": "PRIVATE",
            "created_at": day(0),
            "voided_at": None,
        }
    ]


def test_created_without_owner_is_pooled() -> None:
    state, _, _ = replay(History(day(0), owner_id=None))

    assert state.status == "pooled"


def test_a_skipped_stage_gets_no_visit_but_counts_in_the_furthest_stage() -> None:
    state, visits, _ = replay(History(day(0)).advance("proposal", day(3), ("requirements",)))

    assert [(v["stage"], v["exit_kind"], v["exited_to"]) for v in visits] == [
        ("initial_contact", "advanced", "proposal"),
        ("proposal", None, None),
    ]
    assert (state.furthest_stage, state.furthest_stage_index) == ("proposal", 2)


def test_a_revert_starts_a_new_visit_and_keeps_the_furthest_stage() -> None:
    state, visits, _ = replay(
        History(day(0))
        .advance("requirements", day(1))
        .advance("proposal", day(2))
        .revert("requirements", day(3))
    )

    assert [(v["visit_no"], v["stage"], v["entry_kind"]) for v in visits] == [
        (1, "initial_contact", "created"),
        (2, "requirements", "advanced"),
        (3, "proposal", "advanced"),
        (4, "requirements", "reverted"),
    ]
    assert visits[2]["exit_kind"] == "reverted"
    assert state.furthest_stage_index == 2
    assert state.stage == "requirements"


def test_paused_time_is_not_counted_in_dwell() -> None:
    _, visits, _ = replay(
        History(day(0))
        .pause(day(1))
        .resume(day(3))
        .pause(day(4))
        .resume(day(4.5))
        .advance("requirements", day(6))
    )

    assert visits[0]["paused_seconds"] == 2.5 * DAY
    assert visits[0]["dwell_seconds"] == 3.5 * DAY


def shanghai(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


def test_a_visit_counts_its_working_days_without_the_holiday_and_the_paused_ones() -> None:
    # Mon 28 Sep 2026 09:00 → Mon 12 Oct 09:00, over 国庆 (1–7 Oct off, Saturday 10 Oct at
    # work): 15/24 + 29 + 30 Sep + 8, 9, 10 Oct + 9/24 = 6 working days. Paused from noon on
    # 30 Sep to noon on 9 Oct, across the holiday: ½ + 1 (8 Oct) + ½ = 2 of them.
    _, visits, _ = replay(
        History(shanghai(2026, 9, 28, 9))
        .pause(shanghai(2026, 9, 30, 12))
        .resume(shanghai(2026, 10, 9, 12))
        .advance("requirements", shanghai(2026, 10, 12, 9))
    )

    first, second = visits
    assert (first["paused_working_days"], first["working_days"]) == (2.0, 4.0)
    assert (first["paused_seconds"], first["dwell_seconds"]) == (9 * DAY, 5 * DAY)
    assert (second["paused_working_days"], second["working_days"]) == (0.0, None)


def test_a_pause_ended_by_the_close_counts_its_working_days() -> None:
    # Paused Fri 5 Feb 2027 (除夕, off) to Mon 15 Feb 12:00, lost then: of the working days
    # 1–4 Feb and 11, 12 and half of 15 Feb, the pause holds 2½.
    _, visits, _ = replay(
        History(shanghai(2027, 2, 1)).pause(shanghai(2027, 2, 5)).lose(shanghai(2027, 2, 15, 12))
    )

    assert (visits[0]["paused_working_days"], visits[0]["working_days"]) == (2.5, 4.0)


def test_a_visit_whose_paused_working_days_are_not_known_has_no_working_days() -> None:
    # As a visit paused before the read model counted working days: null until a rebuild.
    h = History(shanghai(2026, 9, 28, 9)).advance("requirements", shanghai(2026, 9, 29, 9))
    created = PROJECTOR.apply(None, read_listed(h.envelopes[0]))
    assert created is not None
    unknown = replace(created.state, visit_paused_working_days=None)

    applied = PROJECTOR.apply(unknown, read_listed(h.envelopes[1]))

    assert applied is not None
    closed, opened = applied.visits
    assert (closed["working_days"], closed["dwell_seconds"]) == (None, DAY)
    assert opened["paused_working_days"] == 0.0


def test_lose_while_paused_ends_the_pause_at_the_loss() -> None:
    state, visits, _ = replay(History(day(0)).pause(day(2)).lose(day(5)))

    assert (visits[0]["exit_kind"], visits[0]["paused_seconds"], visits[0]["dwell_seconds"]) == (
        "lost",
        3 * DAY,
        2 * DAY,
    )
    assert (state.status, state.paused_at, state.closed_stage, state.lost_reason) == (
        "lost",
        None,
        "initial_contact",
        "price",
    )


def test_deferred_time_counts_in_the_stage_but_is_recorded_apart() -> None:
    state, visits, _ = replay(
        History(day(0))
        .defer(day(1), date(2026, 6, 1))
        .reactivate(day(4))
        .advance("requirements", day(5))
    )

    assert (visits[0]["deferred_seconds"], visits[0]["dwell_seconds"]) == (3 * DAY, 5 * DAY)
    assert state.revisit_on is None


def test_reclaim_pools_and_assign_reopens() -> None:
    state, _, history = replay(
        History(day(0)).reclaim(day(1)).assign("rep-2", day(2), team_id="west")
    )

    assert (state.status, state.owner_id, state.team_id) == ("open", "rep-2", "west")
    assert [(h["status"], h["owner_id"]) for h in history] == [
        ("open", "rep-1"),
        ("pooled", None),
        ("open", "rep-2"),
    ]
    assert state.last_progress_at == day(2)


def test_win_closes_the_visit_and_records_the_won_amount() -> None:
    state, visits, _ = replay(History(day(0)).advance("signing", day(1)).win(day(2), "1234.50"))

    assert (state.status, state.won_amount, state.amount, state.closed_at) == (
        "won",
        Decimal("1234.50"),
        Decimal("1234.50"),
        day(2),
    )
    assert visits[-1]["exit_kind"] == "won"


def test_info_updates_change_amount_close_date_and_names() -> None:
    state, _, history = replay(
        History(day(0)).update(
            day(1), amount="999.90", expected_close_on="2026-07-01", customer_name="新名字"
        )
    )

    assert (state.amount, state.expected_close_on, state.customer_name) == (
        Decimal("999.90"),
        date(2026, 7, 1),
        "新名字",
    )
    assert history[-1]["amount"] == Decimal("999.90")
    assert state.last_progress_at == day(0)  # an update is not progress


def test_an_unknown_event_type_moves_the_version_and_changes_no_figure() -> None:
    h = History(day(0)).unknown(day(1))
    state: OpportunityState | None = None
    results = []
    for envelope in h.envelopes:
        applied = PROJECTOR.apply(state, read_listed(envelope))
        assert applied is not None
        state = applied.state
        results.append(applied)

    assert results[1].projected is False
    assert results[1].visits == []
    assert state is not None
    assert state.version == 2
    assert state.last_progress_at == day(0)


def test_an_event_other_than_a_creation_cannot_start_an_opportunity() -> None:
    h = History(day(0)).advance("requirements", day(1))

    assert PROJECTOR.apply(None, read_listed(h.envelopes[1])) is None
