"""`oppstream up` starts everything and Ctrl-C leaves no process behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import consumer_groups

pytestmark = pytest.mark.slow

PORTS = (8000, 8001, 8002)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found |= {int(entry.name), *_children(int(entry.name))}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_serves_every_service_and_ctrl_c_stops_them_all(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OPPSTREAM_KAFKA_SESSION_TIMEOUT_MS": "3000",
        **consumer_groups(str(tmp_path)),
    }
    env.pop("OPPSTREAM_KAFKA_BOOTSTRAP", None)  # the embedded broker, as a newcomer gets it
    up = subprocess.Popen(
        [sys.executable, "-m", "oppstream.cli", "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        ready: set[int] = set()
        while ready != set(PORTS) and time.monotonic() < deadline and up.poll() is None:
            for port in set(PORTS) - ready:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        ready.add(port)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        assert ready == set(PORTS), up.stdout.read() if up.poll() is not None else ready
        children = _children(up.pid)
        assert len(children) >= 4  # the broker and three services (and their own children)
        second = subprocess.run(
            [sys.executable, "-m", "oppstream.cli", "up"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already" in second.stderr
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)]
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
