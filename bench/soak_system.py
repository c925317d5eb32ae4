"""The system a soak runs: three PostgreSQL databases, the broker, and every service as a
child process that the soak may kill, restart, freeze and measure."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from launch import Store, wait_until_ready

from contracts.rules import DEFAULT_RULES_FILE
from oppstream.broker import free_port, start_tansu, stop

STORE_VARIABLES = {
    "opportunity": "OPPSTREAM_EVENTSTORE_URL",
    "projections": "OPPSTREAM_PROJECTIONS_DB_URL",
    "reminders": "OPPSTREAM_REMINDERS_DB_URL",
}


def soak_rules(directory: Path, stale_seconds: float) -> Path:
    """The shipped rules with a staleness ladder of seconds instead of days, so reminders fire
    and deals are reclaimed while the soak runs (SMB after `stale_seconds`, KA after twice)."""
    rules = yaml.safe_load(DEFAULT_RULES_FILE.read_text(encoding="utf-8"))

    def ladder(rule_id: str, tier: str, reclaim: float) -> dict[str, object]:
        return {
            "id": rule_id,
            "match": {"tier": tier},
            "follow_up_after": f"{reclaim / 4:.1f}s",
            "warn_after": f"{reclaim / 2:.1f}s",
            "escalate_after": f"{reclaim * 3 / 4:.1f}s",
            "reclaim_after": f"{reclaim:.1f}s",
        }

    rules["reminders"]["rules"] = [
        ladder("soak-ka", "KA", 2 * stale_seconds),
        ladder("soak-smb", "SMB", stale_seconds),
    ]
    path = directory / "soak-rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Service:
    """One service process: started, killed, restarted; its resident memory sampled."""

    name: str
    kind: str
    port: int
    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    peak_rss_mb: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> tuple[float, float]:
        """Start; the seconds until it answers HTTP (/healthz) and until it is ready."""
        started = time.monotonic()
        log = (self.workdir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "oppstream.cli", "serve", self.kind, "--port", str(self.port)],
            env={**os.environ, **self.env},
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until_ready(f"{self.url}/healthz", self.process, seconds=120)
        answering = time.monotonic() - started
        wait_until_ready(f"{self.url}/readyz", self.process, seconds=120)
        return answering, time.monotonic() - started

    def kill_hard(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def signal(self, number: signal.Signals) -> None:
        """Send `number` to the service and every process it started (its workers)."""
        assert self.process is not None
        for pid in _process_tree(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def sample_rss(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents first."""
    found, index = [pid], 0
    while index < len(found):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{found[index]}/task").iterdir():
                found += [int(child) for child in (task / "children").read_text().split()]
        index += 1
    return found


@contextlib.contextmanager
def frozen(*services: Service) -> Iterator[None]:
    """The services stopped (SIGSTOP) for the block: they neither send nor acknowledge."""
    for service in services:
        service.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for service in services:
            service.signal(signal.SIGCONT)


@dataclass
class Broker:
    """The soak's own broker (a Tansu process) or a named one, which it leaves alone."""

    bootstrap: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def ours(self) -> bool:
        return self.process is not None

    def kill(self) -> None:
        """SIGKILL the broker's process group: the embedded broker keeps its log in memory,
        so the log is gone with it."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def start_empty(self) -> float:
        """Start an empty broker on the same port; the seconds until it listens."""
        started = time.monotonic()
        port = int(self.bootstrap.rsplit(":", 1)[1])
        self.process, _ = start_tansu(port=port, log=self.log)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def pause(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)


@dataclass
class System:
    broker: Broker
    stores: dict[str, str]
    rules: Path
    auth: Path
    opportunity: Service
    projections: list[Service]
    reminders: Service
    workdir: Path
    extra_stores: list[Store] = field(default_factory=list)

    @property
    def services(self) -> list[Service]:
        return [self.opportunity, *self.projections, self.reminders]


@contextlib.contextmanager
def soak_system(workdir: Path, auth: Path, stale_seconds: float) -> Iterator[System]:
    """Fresh PostgreSQL databases, the named broker or an embedded one, every service ready;
    everything stopped and dropped on exit."""
    named = os.environ.get("OPPSTREAM_KAFKA_BOOTSTRAP")
    process, bootstrap = (None, named) if named else start_tansu(log=workdir / "broker.log")
    broker = Broker(str(bootstrap), process, workdir / "broker.log")
    stores = {kind: Store("postgres", workdir) for kind in STORE_VARIABLES}
    try:
        urls = {kind: store.__enter__() for kind, store in stores.items()}
        rules = soak_rules(workdir, stale_seconds)
        common = {
            "OPPSTREAM_KAFKA_BOOTSTRAP": str(bootstrap),
            "OPPSTREAM_AUTH_FILE": str(auth),
            "OPPSTREAM_RULES_FILE": str(rules),
        }

        def service(name: str, kind: str) -> Service:
            env = {**common, STORE_VARIABLES[kind]: urls[kind]}
            if kind == "reminders":
                env["OPPSTREAM_OPPORTUNITY_URL"] = f"http://127.0.0.1:{ports['opportunity']}"
            return Service(name, kind, ports[name], env, workdir)

        ports = {
            name: free_port()
            for name in ("opportunity", "projections-1", "projections-2", "reminders")
        }
        system = System(
            broker=broker,
            stores=urls,
            rules=rules,
            auth=auth,
            opportunity=service("opportunity", "opportunity"),
            projections=[service(n, "projections") for n in ("projections-1", "projections-2")],
            reminders=service("reminders", "reminders"),
            workdir=workdir,
        )
        try:
            for each in system.services:
                each.start()
            yield system
        finally:
            for each in system.services:
                each.stop()
            for extra in system.extra_stores:
                extra.__exit__()
    finally:
        for store in stores.values():
            with contextlib.suppress(Exception):
                store.__exit__()
        broker.stop()
