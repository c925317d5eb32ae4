"""What `/metrics` answers: the service's own registry or, when several worker processes
serve one port (`OPPSTREAM_WORKERS`), the sum over all of them — prometheus_client's
multiprocess mode: each worker writes its values to files in one directory, and the worker
that answers the scrape reads them all. Gauges say how theirs combine (`multiprocess_mode`).
Beside them, the standard `process_*` and `python_*` collectors of the process that answers."""

import os
from functools import cache
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

SHARED_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


def share_across_workers(directory: Path) -> None:
    """Before the workers create their metrics: every value goes to a file in `directory`."""
    os.environ[SHARED_DIRECTORY] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


@cache
def _runtime() -> CollectorRegistry:
    """The process's memory, CPU, open files, and the interpreter's version and collector."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    if SHARED_DIRECTORY not in os.environ:
        return generate_latest(registry) + generate_latest(_runtime())
    every_worker = CollectorRegistry()
    MultiProcessCollector(every_worker)  # type: ignore[no-untyped-call]
    return generate_latest(every_worker) + generate_latest(_runtime())
