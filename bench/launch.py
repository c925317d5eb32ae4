"""Start and stop a service of ours (or the naive baseline) as a subprocess for a bench run."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from contracts.principals import DEV_PRINCIPALS

ROOT = Path(__file__).resolve().parent.parent
TOKENS = {pid: f"bench-token-{pid}-0123456789" for pid, _, _ in DEV_PRINCIPALS}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def auth_file(directory: Path) -> Path:
    path = directory / "auth.json"
    principals = [
        {"token": TOKENS[pid], "id": pid, "role": role.value, "team_id": team}
        for pid, role, team in DEV_PRINCIPALS
    ]
    path.write_text(json.dumps({"principals": principals}))
    return path


def wait_until_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - our own loopback URL
                if answer.status < 500:
                    return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {seconds} s")


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], ready_url: str, cwd: Path) -> Iterator[int]:
    process = subprocess.Popen(
        argv, env={**os.environ, **env}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_until_ready(ready_url, process)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def opportunity_service(
    store_url: str, port: int, workdir: Path
) -> contextlib.AbstractContextManager[int]:
    env = {"OPPSTREAM_EVENTSTORE_URL": store_url, "OPPSTREAM_AUTH_FILE": str(auth_file(workdir))}
    argv = [sys.executable, "-m", "oppstream.cli", "serve", "opportunity", "--port", str(port)]
    return running(argv, env, f"http://127.0.0.1:{port}/readyz", workdir)


def naive_service(
    store_url: str, port: int, workdir: Path
) -> contextlib.AbstractContextManager[int]:
    env = {"BENCH_STORE_URL": store_url, "BENCH_PORT": str(port)}
    argv = [sys.executable, str(ROOT / "bench" / "naive_server.py")]
    return running(argv, env, f"http://127.0.0.1:{port}/docs", workdir)
