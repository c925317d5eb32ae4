"""The rules file's customer and pool sections (SPEC §8.2, §8.3): the shipped defaults, and a
bad key or value refused at start naming the key and its line."""

import pytest

from contracts.customer import GivenCustomer
from contracts.customer_rules import Redistribute
from contracts.rules import DEFAULT_RULES_FILE, RulebookError, load_rulebook, parse_rulebook
from contracts.workdays import WorkingDays


def _with(section: str, body: str) -> str:
    """The shipped rules file with `section` replaced by `body` (YAML at the top level)."""
    text = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    head, _, rest = text.partition(f"\n{section}:")
    tail = rest[rest.find("\n# ") :] if "\n# " in rest else ""
    return f"{head}\n{body}{tail}"


def _refusal(text: str) -> str:
    with pytest.raises(RulebookError) as caught:
        parse_rulebook(text, "rules.yaml")
    return str(caught.value)


def _line(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_shipped_pool_rules_are_the_specs() -> None:
    rules = load_rulebook()
    ka = rules.pool.rule_for("KA", "SOE", "new")
    smb = rules.pool.rule_for("SMB", "PRIVATE", "resale")
    assert ka is not None
    assert smb is not None
    assert (ka.id, ka.claim_limit_per_day, ka.max_held, ka.redistribute) == (
        "ka-pool",
        5,
        50,
        Redistribute.POOL,
    )
    assert (smb.id, smb.claim_limit_per_day, smb.max_held) == ("smb-pool", 10, 200)
    assert str(ka.previous_owner_cooldown) == "30 days, 0:00:00"


def test_an_unknown_pool_key_is_refused_naming_key_and_line() -> None:
    text = _with(
        "pool",
        "pool:\n  rules:\n    - id: ka\n      match: {tier: KA}\n      claim_cap: 5\n",
    )
    message = _refusal(text)
    assert f"pool.rules.0.claim_cap (line {_line(text, 'claim_cap')})" in message


def test_a_bad_cooldown_is_refused_naming_key_and_line() -> None:
    text = _with(
        "pool",
        "pool:\n  rules:\n    - id: ka\n      previous_owner_cooldown: 3 weeks\n",
    )
    message = _refusal(text)
    line = _line(text, "3 weeks")
    assert f"pool.rules.0.previous_owner_cooldown (line {line})" in message
    assert "3wd" in message


def test_a_cooldown_may_count_working_days() -> None:
    text = _with("pool", "pool:\n  rules:\n    - id: ka\n      previous_owner_cooldown: 10wd\n")
    rule = parse_rulebook(text).pool.rules[0]
    assert rule.previous_owner_cooldown == WorkingDays(10)


def test_an_unknown_redistribution_is_refused_naming_key_and_line() -> None:
    text = _with("pool", "pool:\n  rules:\n    - id: ka\n      redistribute: random\n")
    message = _refusal(text)
    assert f"pool.rules.0.redistribute (line {_line(text, 'random')})" in message


def test_a_classification_range_upside_down_is_refused_naming_key_and_line() -> None:
    text = _with(
        "classification",
        "classification:\n  rules:\n    - id: big\n"
        "      when: {employees: {min: 100, max: 10}}\n      tier: KA\n",
    )
    message = _refusal(text)
    assert f"classification.rules.0.when.employees (line {_line(text, 'min: 100')})" in message
    assert "max must not be below min" in message


def test_a_classification_rule_may_not_be_called_manual() -> None:
    text = _with("classification", "classification:\n  rules:\n    - id: manual\n      tier: KA\n")
    assert "'manual' names a tier given by hand" in _refusal(text)


def test_the_shipped_classification_gives_ka_by_revenue_and_smb_by_headcount() -> None:
    rules = load_rulebook().classification
    big = GivenCustomer.model_validate(
        {"uscc": "91110000100000000R", "name": "x", "ownership": "PRIVATE"}
        | {"annual_revenue": "2000000000"}
    )
    small = big.model_copy(update={"annual_revenue": None, "employees": 40})
    assert [r.id if r else None for r in map(rules.first_holding, (big, small))] == [
        "ka-revenue",
        "smb-headcount",
    ]
