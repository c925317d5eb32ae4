"""The alert rules as Prometheus itself reads them: `promtool check rules` (Debian's
`prometheus` package ships it; .ci/run installs it). Skipped, saying why, without it."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted((ROOT / "deploy/prometheus").glob("*.yml"))

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (apt-get install prometheus; .ci/run does)",
)


def check_rules(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "rules", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_promtool_accepts_every_rules_file() -> None:
    assert RULES, "no rules files under deploy/prometheus"
    checked = check_rules(*RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("SUCCESS") == len(RULES)


def test_promtool_refuses_a_rule_prometheus_could_not_evaluate(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n- name: broken\n  rules:\n  - alert: Broken\n    expr: sum(rate(x[5m]) by\n",
        encoding="utf-8",
    )
    checked = check_rules(broken)
    assert checked.returncode != 0
    assert "FAILED" in checked.stdout + checked.stderr
