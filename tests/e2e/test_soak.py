"""The soak's short mode: the whole system on PostgreSQL and a broker of its own, a minute of
commands and leads (on until the faults are over) with every fault of the full soak, the
broker's log wiped among them, then every invariant of SPEC §7."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)
def test_the_short_soak_keeps_every_invariant(tmp_path: Path) -> None:
    # A broker of its own: the soak pauses it, wipes its log, and reads whole topics.
    env = {k: v for k, v in os.environ.items() if k != "OPPSTREAM_KAFKA_BOOTSTRAP"}
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--short", "--logs", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    invariants = [
        line for line in run.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ][1:]
    assert len(invariants) == 11, report
    assert all("| yes |" in line for line in invariants), report
    for fault in (
        "kill -9 opportunity",
        "kill -9 projections-1",
        "kill -9 reminders",
        "broker paused",
        "projections-2 stopped",
        "broker killed (SIGKILL), its log lost",
        "empty broker answering",
        "and every read model current",
    ):
        assert fault in run.stdout, report
