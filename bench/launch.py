"""What a bench run stands on: fresh stores, a broker, our services (or the naive baseline)
as subprocesses."""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from chassis.auth import DEV_PRINCIPALS
from oppstream.broker import embedded_broker, stop

ROOT = Path(__file__).resolve().parent.parent
TOKENS = {pid: f"bench-token-{pid}-0123456789" for pid, _, _ in DEV_PRINCIPALS}


ADMIN_URL = os.environ.get("OPPSTREAM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


class Store:
    """A fresh store per measurement: a new PostgreSQL database or a new SQLite file."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind, self.workdir, self.name = kind, workdir, f"bench_{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / self.name}.db"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        return f"{ADMIN_URL.rsplit('/', 1)[0]}/{self.name}"

    def __exit__(self, *_: object) -> None:
        if self.kind == "postgres":
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """OPPSTREAM_KAFKA_BOOTSTRAP if set, else a fresh embedded broker for this measurement."""
    named = os.environ.get("OPPSTREAM_KAFKA_BOOTSTRAP")
    if named:
        yield named
        return
    with embedded_broker() as (_, bootstrap):
        yield bootstrap


def auth_file(directory: Path) -> Path:
    path = directory / "auth.json"
    principals = [
        {"token": TOKENS[pid], "id": pid, "role": role.value, "team_id": team}
        for pid, role, team in DEV_PRINCIPALS
    ]
    path.write_text(json.dumps({"principals": principals}))
    return path


def wait_until_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
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
    # Its log goes to a file in its folder: a pipe nobody reads fills with the access lines of
    # a benchmark's requests and then holds the service still.
    with (cwd / "services.log").open("ab") as log:
        process = subprocess.Popen(
            argv, env={**os.environ, **env}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log
        )
    try:
        wait_until_ready(ready_url, process)
        yield process.pid
    finally:
        stop(process)


def opportunity_service(
    store_url: str, port: int, workdir: Path, **settings: str
) -> contextlib.AbstractContextManager[int]:
    """The service, ready (with its broker, when `kafka_bootstrap` is among the settings)."""
    env = {
        "OPPSTREAM_EVENTSTORE_URL": store_url,
        "OPPSTREAM_AUTH_FILE": str(auth_file(workdir)),
        **{f"OPPSTREAM_{name.upper()}": value for name, value in settings.items()},
    }
    argv = [sys.executable, "-m", "oppstream.cli", "serve", "opportunity", "--port", str(port)]
    return running(argv, env, f"http://127.0.0.1:{port}/readyz", workdir)


def naive_service(
    store_url: str, port: int, workdir: Path
) -> contextlib.AbstractContextManager[int]:
    env = {"BENCH_STORE_URL": store_url, "BENCH_PORT": str(port)}
    argv = [sys.executable, str(ROOT / "bench" / "naive_server.py")]
    return running(argv, env, f"http://127.0.0.1:{port}/docs", workdir)


async def raw_publish(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> float:
    """The baseline of the publishing benches: a plain aiokafka producer sending `messages` to
    a fresh 6-partition topic, all acknowledged; messages a second."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    topic = f"bench.raw.{uuid.uuid4().hex[:6]}"
    await admin.create_topics([NewTopic(topic, 6, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=40000)
    await producer.start()
    started = time.perf_counter()
    futures = [await producer.send(topic, key=key, value=value) for key, value in messages]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return len(messages) / elapsed
