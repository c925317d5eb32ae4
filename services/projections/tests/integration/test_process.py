"""The service as a process: killed with SIGKILL after a batch is stored but before its
offsets are committed to Kafka, it counts nothing twice once it runs again (SPEC §7)."""

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.projections.tests.cohort import cohort
from services.projections.tests.history import envelopes_of
from tests.support.kafka import TestBroker
from tests.support.principals import auth
from tests.support.processes import free_port, service_env
from tests.support.topics import Outgoing, publish

pytestmark = pytest.mark.slow

DEADLINE = 60.0

# Stores one batch, then dies as a crash would: no shutdown code, no Kafka commit.
CRASHING = """
import os, signal, sys
import uvicorn
from projections.main import build_app
from projections.settings import Settings

def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)

uvicorn.run(build_app(Settings(), on_stored=die), host="127.0.0.1", port=int(sys.argv[1]))
"""


def committed_offset(bootstrap: str, group: str, topic: str) -> int | None:
    """What the group committed for partition 0 of `topic` (None: nothing)."""

    async def read() -> int | None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            request_timeout_ms=40_000,
        )
        await consumer.start()
        try:
            found = await consumer.committed(TopicPartition(topic, 0))
            return None if found is None else int(found)
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_killed_between_storing_and_committing_it_counts_nothing_twice(
    kafka: TestBroker, tmp_path: Path
) -> None:
    topic, group = f"test.projections.{uuid.uuid4().hex[:8]}", f"projections-{uuid.uuid4().hex[:6]}"
    env = service_env(
        tmp_path,
        projections_db_url=f"sqlite:///{tmp_path}/projections.db",
        kafka_bootstrap=kafka.bootstrap,
        projections_topic=topic,
        projections_group=group,
        projections_batch_max="5",
        topic_partitions="1",
        kafka_session_timeout_ms="6000",
        kafka_fetch_max_wait_ms="10",
    )
    envelopes = envelopes_of(*cohort().values())
    publish(
        kafka.bootstrap,
        topic,
        [Outgoing(orjson.dumps(e), str(e["opportunity_id"]).encode()) for e in envelopes],
    )
    logs = tmp_path / "logs"
    logs.mkdir()

    with (logs / "crash.out").open("wb") as out:
        crashing = subprocess.Popen(
            [sys.executable, "-c", CRASHING, str(free_port())],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        assert crashing.wait(timeout=DEADLINE) == -9, (logs / "crash.out").read_text()
    assert committed_offset(kafka.bootstrap, group, topic) is None

    port = free_port()
    with (logs / "serve.out").open("wb") as out:
        service = subprocess.Popen(
            [sys.executable, "-m", "projections", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                deadline = time.monotonic() + DEADLINE
                reached: list[int] = []
                while reached != [6, 3, 3, 2, 1]:
                    assert service.poll() is None, (logs / "serve.out").read_text()
                    assert time.monotonic() < deadline, f"reached {reached}"
                    try:
                        answer = client.get("/funnel", headers=auth("viewer"))
                    except httpx.TransportError:
                        answer = None
                    if answer is not None and answer.status_code == 200:
                        new = answer.json()["pipelines"][0]
                        reached = [s["reached"] for s in new["stages"]]
                    time.sleep(0.05)
                metrics = client.get("/metrics").text
        finally:
            service.terminate()
            service.wait(timeout=10)

    # The first 5 records were stored by the killed process; the new one sought past them.
    assert (
        f'oppstream_projection_events_total{{outcome="applied"}} {len(envelopes) - 5}.0' in metrics
    )
    assert 'outcome="duplicates"' not in metrics
    assert 'outcome="already_applied"' not in metrics
