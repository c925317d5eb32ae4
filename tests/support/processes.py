"""Services as real processes: `oppstream serve NAME` on a free port, ready or explained, always reaped."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from chassis.auth import DEV_PRINCIPALS
from tests.support.principals import TOKENS

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05


def oppstream_executable() -> str:
    """The console script of the venv running the tests (not whatever is first on PATH)."""
    beside = Path(sys.executable).with_name("oppstream")
    if beside.exists():
        return str(beside)
    found = shutil.which("oppstream")
    if found is None:
        raise RuntimeError("the `oppstream` console script is not installed in this environment")
    return found


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((host, port)) == 0


def write_auth_file(path: Path) -> Path:
    """The test principals (tests.support.principals.TOKENS), one per dev principal."""
    principals = [
        {"token": TOKENS[pid], "id": pid, "role": role.value, "team_id": team}
        for pid, role, team in DEV_PRINCIPALS
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"principals": principals}, indent=2), encoding="utf-8")
    return path


def service_env(workdir: Path, **settings: str) -> dict[str, str]:
    """The environment of a child service: ours without any OPPSTREAM_* leaking in, an auth
    file with the test tokens, then `settings` (e.g. eventstore_url="sqlite:///...")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPSTREAM_")}
    env["OPPSTREAM_AUTH_FILE"] = str(write_auth_file(workdir / "auth.json"))
    env.update(consumer_groups(str(workdir)))
    env.update({f"OPPSTREAM_{name.upper()}": value for name, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def consumer_groups(scope: str) -> dict[str, str]:
    """Consumer groups of their own for the services of one test (`scope`): the broker lives
    for the whole session, and a member left behind by another test's killed service must
    not hold this test's group."""
    suffix = hashlib.sha256(scope.encode()).hexdigest()[:10]
    return {
        f"OPPSTREAM_{name}_GROUP": f"{group}.{suffix}"
        for name, group in (
            ("INTAKE", "opportunity.intake"),
            ("COMMANDS", "opportunity.commands"),
            ("PROJECTIONS", "projections"),
            ("REMINDERS", "reminders"),
        )
    }


@dataclass
class Service:
    """A started `oppstream serve` process and where to reach it."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """What the process wrote so far, for assertion messages."""
        out = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        err = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def kill_hard(self) -> None:
        """SIGKILL, as a crash would: no shutdown code runs. Reaped before returning."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL if it does not end within `timeout`; always reaped."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(timeout=STOP_TIMEOUT)


def start_service(
    name: str,
    env: Mapping[str, str],
    workdir: Path,
    *,
    args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
    consumers_started: bool = True,
) -> Service:
    """Start `oppstream serve NAME` on a free port in `workdir`; return once GET /readyz is 200
    and (unless `consumers_started` is False) its consumers have started.

    If it exits or is not ready before the deadline, it is stopped and the error carries its
    output. A port taken between choosing it and binding it is retried on another port.
    """
    for _ in range(3):
        service = _spawn(name, env, workdir, args)
        try:
            if _wait_ready(service, ready_timeout, consumers_started):
                return service
        except BaseException:
            service.stop()
            raise
        output = service.output()
        service.stop()
        if "address already in use" not in output.lower():
            raise RuntimeError(
                f"{name} service (pid {service.pid}) exited with {service.process.returncode} "
                f"before it was ready\n{output}"
            )
    raise RuntimeError(f"{name} service: no free port after 3 attempts")


@contextmanager
def running_service(
    name: str,
    env: Mapping[str, str],
    workdir: Path,
    *,
    args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
) -> Iterator[Service]:
    """`start_service`, stopped (and reaped) however the block ends."""
    service = start_service(name, env, workdir, args=args, ready_timeout=ready_timeout)
    try:
        yield service
    finally:
        service.stop()


def run_oppstream(
    args: Sequence[str], env: Mapping[str, str], workdir: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run `oppstream ARGS` to completion (killed if it outlives `timeout`), capturing output."""
    return subprocess.run(
        [oppstream_executable(), *args],
        cwd=workdir,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _spawn(name: str, env: Mapping[str, str], workdir: Path, args: Sequence[str]) -> Service:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    stamp = f"{name}-{port}-{time.monotonic_ns()}"
    stdout_path, stderr_path = logs / f"{stamp}.out", logs / f"{stamp}.err"
    # Output goes to files, not pipes: nobody reads a pipe while the service runs, and a full
    # pipe would block the service mid-request.
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                oppstream_executable(),
                "serve",
                name,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    return Service(name, port, process, stdout_path, stderr_path)


def _wait_ready(service: Service, timeout: float, consumers_started: bool) -> bool:
    """True once /readyz answers 200 and, with `consumers_started`, any consumers have started
    (the opportunity service is ready before its groups settle; a test's records then meet no
    rebalance); False if the process exits; TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(base_url=service.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                return False
            try:
                answer = client.get("/readyz")
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                started = answer.json().get("consumers", "started") == "started"
                if answer.status_code == 200 and (started or not consumers_started):
                    return True
                last = f"{answer.status_code} {answer.text[:200]}"
            time.sleep(_POLL_INTERVAL)
    raise TimeoutError(
        f"{service.name} service (pid {service.pid}) not ready after {timeout}s: {last}\n"
        f"{service.output()}"
    )
