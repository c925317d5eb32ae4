"""`oppstream up`: the embedded default — a local broker, SQLite stores under ./var, every
service as a child process; Ctrl-C or SIGTERM stops them all."""

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chassis.auth import auth_file_path, load_principals
from oppstream.broker import BrokerUnavailable, start_tansu, stop

VAR = Path("var")
PORTS = {"opportunity": 8000, "projections": 8001, "reminders": 8002}
STORES = {
    "opportunity": ("OPPSTREAM_EVENTSTORE_URL", "sqlite:///var/eventstore.db"),
    "projections": ("OPPSTREAM_PROJECTIONS_DB_URL", "sqlite:///var/projections.db"),
    "reminders": ("OPPSTREAM_REMINDERS_DB_URL", "sqlite:///var/reminders.db"),
}
READY_SECONDS = 90
# The workbench's pages (served by the opportunity service) call these services from the browser.
WORKBENCH_ORIGINS = '["http://127.0.0.1:8000","http://localhost:8000"]'
CALLED_BY_WORKBENCH = ("projections", "reminders")


class AlreadyRunning(RuntimeError):
    pass


@dataclass
class System:
    """What `up` started: the broker (unless one was named) and the services."""

    bootstrap: str
    broker: subprocess.Popen[bytes] | None = None
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    log_dir: Path = VAR / "log"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"

    def workbench_url(self) -> str:
        return f"{self.url('opportunity')}/app/"

    def start_held(self, name: str) -> None:
        """Start a service `system_up` held back, and wait until it is ready."""
        self.services[name] = _start(name, self.bootstrap, self.log_dir)
        _wait_ready(self, name)


def available_services() -> list[str]:
    return [name for name in PORTS if importlib.util.find_spec(f"{name}.main") is not None]


@contextlib.contextmanager
def system_up(log_dir: Path = VAR / "log", hold: tuple[str, ...] = ()) -> Iterator[System]:
    """Start everything but `hold` (start those later with `start_held`), wait until every
    /readyz answers, stop everything on exit."""
    _refuse_second_run()
    log_dir.mkdir(parents=True, exist_ok=True)
    pid_file = VAR / "up.pid"
    pid_file.write_text(str(os.getpid()))
    named = os.environ.get("OPPSTREAM_KAFKA_BOOTSTRAP")
    system = System(bootstrap=named or "")
    try:
        if not named:
            system.broker, system.bootstrap = start_tansu(log=log_dir / "broker.log")
        system.log_dir = log_dir
        for name in available_services():
            if name not in hold:
                system.services[name] = _start(name, system.bootstrap, log_dir)
        for name in system.services:
            _wait_ready(system, name)
        yield system
    finally:
        for process in system.services.values():
            _stop_service(process)
        if system.broker is not None:
            stop(system.broker)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()


def run_up() -> int:
    """`oppstream up`: print where everything is, then wait for Ctrl-C or SIGTERM."""
    stop_on_signals()
    try:
        with system_up() as system:
            announce(system)
            print("\nCtrl-C stops everything.", flush=True)
            while all(p.poll() is None for p in system.services.values()):
                time.sleep(0.5)
            died = [n for n, p in system.services.items() if p.poll() is not None]
            print(f"oppstream: {', '.join(died)} stopped; see var/log/", file=sys.stderr)
            return 1
    except AlreadyRunning as exc:
        print(f"oppstream: {exc}", file=sys.stderr)
        return 1
    except (BrokerUnavailable, TimeoutError) as exc:
        print(f"oppstream: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\noppstream: stopped", flush=True)
        return 0


def announce(system: System) -> None:
    print(f"broker:        {system.bootstrap}" + ("" if system.broker else " (named)"))
    for name in system.services:
        print(f"{name + ':':<14} {system.url(name)}  (API docs {system.url(name)}/docs)")
    auth = auth_file_path(_configured_auth())
    credentials = load_principals(auth).credentials
    if "projections" in system.services:
        print(f"\ndashboard:     {system.url('projections')}/")
    if "opportunity" in system.services:
        print(f"workbench:     {workbench_line(system)}")
    print(f"\ndev principals ({auth}); send Authorization: Bearer <token>")
    for credential in credentials:
        team = credential.team_id or "-"
        print(f"  {credential.id:<14} {credential.role.value:<8} {team:<6} {credential.token}")


def workbench_line(system: System) -> str:
    """The workbench's address and the token a rep signs in with (the first rep of the auth
    file), or the address alone when the file names no rep."""
    credentials = load_principals(auth_file_path(_configured_auth())).credentials
    rep = next((c for c in credentials if c.role.value == "rep"), None)
    signed = "" if rep is None else f"  (token of '{rep.id}': {rep.token})"
    return f"{system.workbench_url()}{signed}"


def _configured_auth() -> Path | None:
    configured = os.environ.get("OPPSTREAM_AUTH_FILE")
    return Path(configured) if configured else None


def _refuse_second_run() -> None:
    pid_file = VAR / "up.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.kill(int(pid_file.read_text()), 0)
            raise AlreadyRunning(
                f"`oppstream up` already runs here (pid {pid_file.read_text()}); "
                "stop it with Ctrl-C first"
            )
    for name, port in PORTS.items():
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5):  # noqa: S310 - loopback
                raise AlreadyRunning(f"something already serves port {port} (for {name})")


def _start(name: str, bootstrap: str, log_dir: Path) -> subprocess.Popen[bytes]:
    variable, default = STORES[name]
    env = {
        **os.environ,
        **_workbench_origins(name),
        "OPPSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "OPPSTREAM_AUTH_FILE": str(auth_file_path(_configured_auth())),
        variable: os.environ.get(variable, default),
    }
    log = (log_dir / f"{name}.log").open("ab")
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "oppstream.cli", "serve", name, "--port", str(PORTS[name])],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _workbench_origins(name: str) -> dict[str, str]:
    """Let the workbench's pages call the service, unless the user chose the origins."""
    if name in CALLED_BY_WORKBENCH and "OPPSTREAM_CORS_ORIGINS" not in os.environ:
        return {"OPPSTREAM_CORS_ORIGINS": WORKBENCH_ORIGINS}
    return {}


def _wait_ready(system: System, name: str) -> None:
    process = system.services[name]
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TimeoutError(f"{name} exited with {process.returncode}; see var/log/{name}.log")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{system.url(name)}/readyz", timeout=2) as answer:  # noqa: S310
                if answer.status == 200:
                    return
        time.sleep(0.2)
    raise TimeoutError(f"{name} was not ready within {READY_SECONDS} s; see var/log/{name}.log")


def _stop_service(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def stop_on_signals() -> None:
    """Ctrl-C, `kill -INT` and SIGTERM all stop everything (as KeyboardInterrupt), even in a
    background job, which a shell starts with SIGINT ignored (`make up &`)."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt
