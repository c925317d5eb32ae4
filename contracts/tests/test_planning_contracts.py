"""The contracts of SPEC §9: a target's period in its three forms (and the texts refused), which
aggregate an event on the events topic is of, and the rules file's coded deferral reasons (the
shipped ones, and a repeated id or a bad lead time refused naming the key and its line)."""

from datetime import date, timedelta

import pytest

from contracts.envelope import RecordKind, kind_of
from contracts.rules import DEFAULT_RULES_FILE, RulebookError, load_rulebook, parse_rulebook
from contracts.targets import parse_period, target_id_for

REASONS_HEAD = "deferral_reasons:\n"


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026", date(2026, 1, 1), date(2027, 1, 1)),
        ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1)),
        ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),
        ("2026-02", date(2026, 2, 1), date(2026, 3, 1)),
        ("2026-12", date(2026, 12, 1), date(2027, 1, 1)),
    ],
)
def test_a_period_is_a_year_a_quarter_or_a_month(text: str, start: date, end: date) -> None:
    period = parse_period(text)
    assert (period.start, period.end, str(period)) == (start, end, text)
    assert period.contains(start)
    assert not period.contains(end)


@pytest.mark.parametrize(
    "text", ["", "26", "2026-Q5", "2026-Q0", "2026-13", "2026-00", "2026-1", "2026Q4", "2026-q4"]
)
def test_a_period_in_no_form_is_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"YYYY, YYYY-Qn \(n 1-4\), YYYY-MM"):
        parse_period(text)


def test_a_month_lies_within_its_quarter_and_year() -> None:
    december, q4, year = parse_period("2026-12"), parse_period("2026-Q4"), parse_period("2026")
    assert december.within(q4)
    assert q4.within(year)
    assert not year.within(q4)


def test_the_same_target_key_always_names_the_same_target() -> None:
    key = ("2026-Q4", "team", "east", "won_amount")
    assert target_id_for(*key) == target_id_for(*key)
    assert target_id_for(*key) != target_id_for("2026-Q4", "team", "east", "won_count")


@pytest.mark.parametrize(
    ("event_type", "kind"),
    [
        ("OpportunityCreated", RecordKind.OPPORTUNITY),
        ("StageAdvanced", RecordKind.OPPORTUNITY),
        ("CustomerKeyPersonAdded", RecordKind.CUSTOMER),
        ("TargetSet", RecordKind.TARGET),
        ("TargetAllocated", RecordKind.TARGET),
        ("TargetAdjusted", RecordKind.TARGET),
        ("TargetSomethingLater", RecordKind.TARGET),
        ("CompetitionDefined", RecordKind.COMPETITION),
        ("SomethingNew", RecordKind.OPPORTUNITY),
    ],
)
def test_an_events_aggregate_kind_comes_from_its_types_first_word(
    event_type: str, kind: RecordKind
) -> None:
    assert kind_of(event_type) is kind


def test_the_shipped_deferral_reasons_are_the_issues() -> None:
    rules = load_rulebook()
    assert [r.id for r in rules.deferral_reasons] == [
        "tender_cycle",
        "budget_cycle",
        "fiscal_year",
        "leadership_change",
        "other",
    ]
    assert rules.deferral_reason("tender_cycle").revisit_after == timedelta(days=90)
    assert [r.id for r in rules.deferral_reasons if r.note_required] == ["other"]
    with pytest.raises(KeyError):
        rules.deferral_reason("next fiscal year")


def _with_reasons(body: str) -> str:
    text = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    head, _, rest = text.partition(REASONS_HEAD)
    tail = rest[rest.index("\n\n") :]
    return f"{head}{REASONS_HEAD}{body}{tail}"


def _refusal(text: str) -> str:
    with pytest.raises(RulebookError) as caught:
        parse_rulebook(text, "rules.yaml")
    return str(caught.value)


def test_a_repeated_deferral_reason_id_is_refused_naming_the_key() -> None:
    text = _with_reasons(
        "  - {id: tender_cycle, label: {zh: 招标, en: Tender}, revisit_after: 90d}\n"
        "  - {id: tender_cycle, label: {zh: 招标, en: Tender}, revisit_after: 30d}"
    )
    refusal = _refusal(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row == "deferral_reasons:")
    assert f"deferral_reasons (line {line})" in refusal
    assert "['tender_cycle']" in refusal


@pytest.mark.parametrize("lead", ["12h", "0d", "36h"])
def test_a_revisit_lead_time_not_in_whole_days_is_refused_naming_key_and_line(lead: str) -> None:
    text = _with_reasons(
        f"  - {{id: tender_cycle, label: {{zh: 招标, en: T}}, revisit_after: {lead}}}"
    )
    refusal = _refusal(text)
    assert "deferral_reasons" in refusal
    assert "revisit_after" in refusal
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "revisit_after" in row)
    assert f"line {line}" in refusal


def test_a_deferral_reason_id_that_is_no_code_is_refused() -> None:
    text = _with_reasons("  - {id: Tender Cycle, label: {zh: 招标, en: T}, revisit_after: 90d}")
    assert "deferral_reasons" in _refusal(text)
