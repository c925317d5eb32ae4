"""`oppstream rules show` and `oppstream rules check FILE` (SPEC §6)."""

from pathlib import Path

import pytest

from contracts.rules import DEFAULT_RULES_FILE
from oppstream.cli import main


def test_show_prints_the_shipped_default_when_no_file_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPPSTREAM_RULES_FILE", raising=False)
    assert main(["rules", "show"]) == 0
    assert capsys.readouterr().out == DEFAULT_RULES_FILE.read_text(encoding="utf-8")


def test_show_prints_the_file_oppstream_rules_file_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = tmp_path / "rules.yaml"
    custom.write_text(
        DEFAULT_RULES_FILE.read_text(encoding="utf-8").replace("version:", "# ours\nversion:", 1),
        encoding="utf-8",
    )
    monkeypatch.setenv("OPPSTREAM_RULES_FILE", str(custom))
    assert main(["rules", "show"]) == 0
    assert "# ours" in capsys.readouterr().out


def test_check_says_a_good_file_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(DEFAULT_RULES_FILE)]) == 0
    assert "valid" in capsys.readouterr().out


def test_check_names_the_key_and_the_line_of_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = DEFAULT_RULES_FILE.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("version:"))
    lines.insert(at + 1, "no_such_key: 1")
    bad = tmp_path / "bad.yaml"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["rules", "check", str(bad)]) == 1
    said = capsys.readouterr().err
    assert "no_such_key" in said
    assert f"line {at + 2}" in said


def test_check_refuses_a_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "check", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot be read" in capsys.readouterr().err


def test_check_takes_a_working_day_ladder_and_refuses_one_mixed_with_calendar_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    working = tmp_path / "working.yaml"
    working.write_text(
        text.replace("follow_up_after: P3D", "follow_up_after: 3wd")
        .replace(
            "warn_after: P7D\n      escalate_after: P10D",
            "warn_after: 5wd\n      escalate_after: 8wd",
        )
        .replace("reclaim_after: P14D", "reclaim_after: 10wd"),
        encoding="utf-8",
    )
    assert main(["rules", "check", str(working)]) == 0
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(text.replace("reclaim_after: P14D", "reclaim_after: 10wd"), encoding="utf-8")
    line = next(n for n, s in enumerate(text.splitlines(), 1) if "reclaim_after: P14D" in s)
    capsys.readouterr()
    assert main(["rules", "check", str(mixed)]) == 1
    said = capsys.readouterr().err
    assert f"reclaim_after (line {line})" in said
    assert "mixes working days and calendar time" in said


def test_check_names_the_delivery_channel_key_and_line_without_the_url_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DEFAULT_RULES_FILE.read_text(encoding="utf-8").replace(
        "  channels: []\n",
        "  channels:\n"
        "    - id: east-ding\n"
        "      kind: dingtalk\n"
        "      url: https://oapi.dingtalk.com/robot/send?access_token=tok-not-to-show\n",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    - id: east-ding") + 1
    assert main(["rules", "check", str(bad)]) == 1
    said = capsys.readouterr().err
    assert f"delivery.channels.0.secret (line {line})" in said
    assert "required for a dingtalk channel" in said
    assert "tok-not-to-show" not in said
