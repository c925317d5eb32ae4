"""What `oppstream up` tells and gives for the workbench: its address with a rep's token next to
the dashboard's, and the CORS origins the projections and reminders children get unless the
user chose them."""

import json
import subprocess
from pathlib import Path
from typing import cast

import pytest

from oppstream.up import WORKBENCH_ORIGINS, System, _workbench_origins, announce

PRINCIPALS = {
    "principals": [
        {"token": "v" * 24, "id": "viewer", "role": "viewer"},
        {"token": "r" * 24, "id": "rep-7", "role": "rep", "team_id": "north"},
        {"token": "m" * 24, "id": "manager-north", "role": "manager", "team_id": "north"},
    ]
}


@pytest.fixture
def auth_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(PRINCIPALS))
    monkeypatch.setenv("OPPSTREAM_AUTH_FILE", str(path))
    return path


def test_up_prints_the_workbench_with_the_first_rep_s_token_after_the_dashboard(
    auth_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = cast(subprocess.Popen[bytes], object())
    system = System("127.0.0.1:9092", services={"opportunity": running, "projections": running})

    announce(system)

    lines = capsys.readouterr().out.splitlines()
    dashboard = next(i for i, line in enumerate(lines) if line.startswith("dashboard:"))
    assert lines[dashboard].split()[-1] == "http://127.0.0.1:8001/"
    assert lines[dashboard + 1].split() == [
        "workbench:",
        "http://127.0.0.1:8000/app/",
        "(token",
        "of",
        "'rep-7':",
        "r" * 24 + ")",
    ]


@pytest.mark.parametrize("service", ["projections", "reminders"])
def test_the_workbench_s_origins_go_to_the_services_it_calls(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPPSTREAM_CORS_ORIGINS", raising=False)

    assert _workbench_origins(service) == {"OPPSTREAM_CORS_ORIGINS": WORKBENCH_ORIGINS}
    assert json.loads(WORKBENCH_ORIGINS) == ["http://127.0.0.1:8000", "http://localhost:8000"]
    assert _workbench_origins("opportunity") == {}


def test_origins_the_user_set_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPPSTREAM_CORS_ORIGINS", '["https://crm.example.cn"]')

    assert _workbench_origins("projections") == {}
