"""The benches' processes: started with a log, stopped at the end, their peak RSS sampled,
waited for until they answer."""

import contextlib
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from launch import auth_file

from oppstream.broker import stop


class RssSampler:
    """The largest resident set of a process, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def service_env(workdir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPSTREAM_")}
    env["OPPSTREAM_AUTH_FILE"] = str(auth_file(workdir))
    env.update({f"OPPSTREAM_{k.upper()}": v for k, v in settings.items()})
    return env


@contextlib.contextmanager
def process(
    argv: list[str], env: dict[str, str], workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    log = (workdir / f"{time.monotonic_ns()}.log").open("wb")
    proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        time.sleep(0.02)
    raise TimeoutError(f"{url} not ready in {seconds} s")
