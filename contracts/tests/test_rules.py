"""The rules file: the shipped default, pipeline and reminder-rule choice, and clear refusals."""

from pathlib import Path

import pytest

from contracts.rules import RulebookError, load_rulebook, parse_rulebook
from contracts.workdays import WorkingDays

STAGE = """\
      - id: {id}
        label: {{zh: "阶段", en: "Stage"}}
        probability: {probability}
        forecast_category: pipeline
"""


def _pipeline(id_: str, type_: str, stages: list[str], tier: str | None = None) -> str:
    head = f"  - id: {id_}\n    type: {type_}\n" + (f"    tier: {tier}\n" if tier else "")
    body = "".join(STAGE.format(id=s, probability=0.5) for s in stages)
    return head + "    stages:\n" + body


RULES = (
    'version: "test-1"\n'
    "pipelines:\n"
    + _pipeline("new", "new", ["initial_contact", "requirements", "proposal", "signing"])
    + _pipeline("new-smb", "new", ["initial_contact", "signing"], tier="SMB")
    + _pipeline("renewal", "renewal", ["initial_contact", "signing"])
    + _pipeline("resale", "resale", ["initial_contact", "proposal", "signing"])
    + """\
lost_reasons:
  - {id: price, label: {zh: "价格", en: "Price"}}
reminders:
  rules:
    - id: ka
      match: {tier: KA}
      follow_up_after: P7D
      reclaim_after: P30D
    - id: ka-proposal
      match: {tier: KA, stage: proposal}
      follow_up_after: 2d
    - id: ka-new
      match: {tier: KA, type: new}
      follow_up_after: 3d
    - id: ka-soe
      match: {tier: KA, ownership: SOE}
      follow_up_after: 4d
    - id: smb
      match: {tier: SMB}
      follow_up_after: 36h
"""
)


def _line(text: str, needle: str) -> int:
    """The 1-based number of the first line of `text` that holds `needle`."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def _refusal(text: str) -> str:
    with pytest.raises(RulebookError) as caught:
        parse_rulebook(text, "rules.yaml")
    return str(caught.value)


def test_default_rules_file_loads() -> None:
    rules = load_rulebook()
    assert rules.version
    assert sorted(p.type.value for p in rules.pipelines) == ["new", "renewal", "resale"]
    assert "competitor" in rules.lost_reason_ids


def test_renewal_pipeline_has_no_requirements_stage() -> None:
    rules = load_rulebook()
    assert rules.pipeline_for("renewal", "KA").stage_ids == (
        "initial_contact",
        "proposal",
        "negotiation",
        "signing",
    )
    assert "requirements" in rules.pipeline_for("new", "KA").stage_ids


def test_pipeline_for_picks_the_tiers_own_pipeline_when_there_is_one() -> None:
    rules = parse_rulebook(RULES)
    assert rules.pipeline_for("new", "SMB").id == "new-smb"


def test_pipeline_for_falls_back_to_the_types_pipeline() -> None:
    rules = parse_rulebook(RULES)
    assert rules.pipeline_for("new", "KA").id == "new"
    assert rules.pipeline_for("renewal", "SMB").id == "renewal"


def test_most_specific_reminder_rule_wins() -> None:
    reminders = parse_rulebook(RULES).reminders
    tier_and_stage = reminders.rule_for("KA", "PRIVATE", "resale", "proposal")
    assert tier_and_stage is not None
    assert tier_and_stage.id == "ka-proposal"
    tier_only = reminders.rule_for("KA", "PRIVATE", "resale", "initial_contact")
    assert tier_only is not None
    assert tier_only.id == "ka"


def test_equally_specific_reminder_rules_tie_to_the_first_written() -> None:
    # ka-new and ka-soe both match two facts; ka-new is written first.
    rule = parse_rulebook(RULES).reminders.rule_for("KA", "SOE", "new", "initial_contact")
    assert rule is not None
    assert rule.id == "ka-new"


def test_no_reminder_rule_when_none_matches() -> None:
    text = RULES.replace(
        "    - id: smb\n      match: {tier: SMB}\n      follow_up_after: 36h\n", ""
    )
    assert parse_rulebook(text).reminders.rule_for("SMB", "SOE", "new", "signing") is None


def test_bad_duration_is_refused_naming_key_and_line() -> None:
    text = RULES.replace("follow_up_after: 36h", "follow_up_after: 36 hours")
    message = _refusal(text)
    line = _line(text, "36 hours")
    assert f"reminders.rules.4.follow_up_after (line {line})" in message
    assert "'36 hours' is not a duration" in message


def test_probability_above_one_is_refused_naming_key_and_line() -> None:
    lines = RULES.splitlines(keepends=True)
    target = _line(RULES, "probability") + 4  # the second stage of the first pipeline
    lines[target - 1] = lines[target - 1].replace("0.5", "4")
    message = _refusal("".join(lines))
    assert f"pipelines.0.stages.1.probability (line {target})" in message
    assert "less than or equal to 1" in message


def test_unknown_key_is_refused_naming_key_and_line() -> None:
    text = RULES.replace("    - id: ka-proposal\n", "    - id: ka-proposal\n      colour: red\n")
    message = _refusal(text)
    assert f"reminders.rules.1.colour (line {_line(text, 'colour')})" in message
    assert "Extra inputs are not permitted" in message


def test_missing_version_is_refused_naming_the_key() -> None:
    message = _refusal(RULES.replace('version: "test-1"\n', ""))
    assert "version (line 1): Field required" in message


def test_invalid_yaml_is_refused_with_its_line() -> None:
    text = RULES.replace("    type: renewal\n", "    type: renewal: again\n")
    message = _refusal(text)
    assert f"rules.yaml line {_line(text, 'renewal: again')}: not valid YAML" in message


def test_empty_rules_file_is_refused() -> None:
    assert "is empty" in _refusal("# nothing but a comment\n")


def test_a_pipeline_per_type_without_tier_is_required() -> None:
    text = RULES.replace("    type: resale\n", "    type: resale\n    tier: KA\n")
    assert "no pipeline for every tier of type ['resale']" in _refusal(text)


def test_reminder_ladder_must_rise() -> None:
    text = RULES.replace("      reclaim_after: P30D\n", "      reclaim_after: P5D\n")
    assert "reclaim_after must be longer than follow_up_after" in _refusal(text)


def test_a_ladder_may_count_working_days() -> None:
    text = RULES.replace("follow_up_after: P7D", "follow_up_after: 3wd").replace(
        "reclaim_after: P30D", "reclaim_after: 10WD"
    )
    rule = parse_rulebook(text).reminders.rules[0]
    assert (rule.follow_up_after, rule.reclaim_after) == (WorkingDays(3), WorkingDays(10))


def test_a_ladder_mixing_working_days_and_calendar_time_is_refused_naming_rule_and_key() -> None:
    text = RULES.replace("follow_up_after: P7D", "follow_up_after: 3wd")
    message = _refusal(text)
    assert f"reminders.rules.0.reclaim_after (line {_line(text, 'reclaim_after')})" in message
    assert "rule 'ka' mixes working days and calendar time" in message
    assert "reclaim_after is P30D but follow_up_after is 3wd" in message


def test_a_working_day_ladder_must_rise_too() -> None:
    text = RULES.replace("follow_up_after: P7D", "follow_up_after: 10wd").replace(
        "reclaim_after: P30D", "reclaim_after: 9wd"
    )
    assert "reclaim_after must be longer than follow_up_after in rule 'ka'" in _refusal(text)


@pytest.mark.parametrize("span", ["3x", "1.5wd", "-2wd"])
def test_a_bad_span_is_refused_naming_key_and_line(span: str) -> None:
    text = RULES.replace("follow_up_after: 36h", f"follow_up_after: {span}")
    message = _refusal(text)
    line = _line(text, f"follow_up_after: {span}")
    assert f"reminders.rules.4.follow_up_after (line {line})" in message
    assert f"{span!r} is not a duration" in message
    assert "'3wd'" in message


def test_load_rulebook_refuses_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(RulebookError, match="cannot be read") as caught:
        load_rulebook(missing)
    assert str(missing) in str(caught.value)


def test_load_rulebook_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    assert load_rulebook(path).version == "test-1"
