"""Run one service under uvicorn, refusing to start on a bad rules, auth or settings file.

Each service says in its composition root (`<service>.main.SERVICE`) what `serve` needs: its
name, its settings (an `OppstreamSettings`), `build_app(settings, *, rules, principals)` and
the setting that holds its store's URL.

With `OPPSTREAM_WORKERS` (or `--workers`) above 1, that many worker processes serve the
port (a socket each, SO_REUSEPORT), each with its own app (its own group commit, consumers and
aggregate cache; the relay runs in the one that holds the relay lock); `/metrics` answers the
sum over the workers, whichever answers the scrape. A worker dies with
the parent (`kill -9` included); when one worker stops, the others are stopped too, so a
supervisor sees one failure and restarts the whole.
"""

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import uvicorn

from chassis.auth import Principals
from chassis.configuration import BadConfiguration, read_configuration
from chassis.exposition import share_across_workers
from chassis.logs import configure_logging
from chassis.settings import OppstreamSettings
from contracts.rules import Rulebook

Settings = TypeVar("Settings", bound=OppstreamSettings)
Settings_contra = TypeVar("Settings_contra", bound=OppstreamSettings, contravariant=True)


class AppBuilder(Protocol[Settings_contra]):
    """A service's composition root: its ASGI application, wired."""

    def __call__(
        self, settings: Settings_contra, *, rules: Rulebook, principals: Principals
    ) -> Any: ...


@dataclass(frozen=True)
class Service(Generic[Settings]):
    """What `serve` needs to know of a service."""

    name: str
    settings: Callable[[], Settings]  # read from the environment
    build_app: AppBuilder[Settings]
    store: str  # the setting holding its store's URL: several workers need PostgreSQL


def serve(
    service: Service[Any],
    host: str,
    port: int,
    workers: int | None = None,
    *,
    program: str = "oppstream",
) -> int:
    """Serve until stopped; 2 (said on stderr, after `program`) when the configuration is
    bad."""
    configure_logging(service.name, "text")
    try:
        settings, rules, principals = read_configuration(service.settings)
    except BadConfiguration as exc:
        print(f"{program}: {exc}", file=sys.stderr)
        return 2
    configure_logging(service.name, settings.log_format)
    workers = workers or settings.workers
    settings = settings.model_copy(update={"workers": workers})
    if workers > 1 and not str(getattr(settings, service.store)).startswith("postgresql"):
        print(
            f"{program}: OPPSTREAM_WORKERS={workers} needs a PostgreSQL store "
            f"(OPPSTREAM_{service.store.upper()})",
            file=sys.stderr,
        )
        return 2

    def build() -> Any:
        return service.build_app(settings, rules=rules, principals=principals)

    if workers == 1:
        uvicorn.run(
            build(), host=host, port=port, log_level="info", access_log=False, log_config=None
        )
        return 0
    return _serve_workers(build, host, port, workers)


PR_SET_PDEATHSIG = 1


def _serve_workers(build: Callable[[], Any], host: str, port: int, workers: int) -> int:
    metrics = Path(tempfile.mkdtemp(prefix="oppstream-metrics-"))
    share_across_workers(metrics)  # /metrics answers the sum over the workers
    try:
        return _fork_workers(build, host, port, workers)
    finally:
        shutil.rmtree(metrics, ignore_errors=True)


def _fork_workers(build: Callable[[], Any], host: str, port: int, workers: int) -> int:
    parent = os.getpid()
    children = []
    for _ in range(workers):
        # A listening socket per worker on the same port (SO_REUSEPORT): the kernel spreads
        # new connections evenly over them. One worker after the other: a worker's app
        # creates the store's tables if missing, and the next one starts once that is done.
        listener = socket.create_server((host, port), backlog=2048, reuse_port=True)
        built, done = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(built)
            _work(build, listener, parent, done)
        listener.close()
        os.close(done)
        with os.fdopen(built, "rb") as ready:
            started = ready.read(1) == b"1"
        children.append(child)
        if not started:
            break

    def stop_children(*_: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_children)
    signal.signal(signal.SIGINT, stop_children)
    _, status = os.wait()  # the first worker to stop, for whatever reason, stops them all
    stop_children()
    for child in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
    return 0 if os.waitstatus_to_exitcode(status) == 0 else 1


def _work(build: Callable[[], Any], listener: socket.socket, parent: int, done: int) -> None:
    """A worker process: its own app on the shared socket; never returns."""
    code = 1
    try:
        _die_with(parent)
        config = uvicorn.Config(build(), log_level="info", access_log=False, log_config=None)
        os.write(done, b"1")
        os.close(done)
        uvicorn.Server(config).run(sockets=[listener])
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """Linux: the kernel kills this worker when the parent dies, whatever kills it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)
