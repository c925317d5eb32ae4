"""`/metrics` carries the standard process and Python collectors beside the service's own
metrics, whether one process serves or several workers share their values (SPEC §11)."""

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from chassis.exposition import SHARED_DIRECTORY, exposition

STANDARD = (b"process_resident_memory_bytes", b"python_info", b"python_gc_objects_collected")


def test_one_process_exposes_its_own_and_the_standard_metrics() -> None:
    registry = CollectorRegistry()
    Counter("oppstream_things", "things", registry=registry).inc()
    text = exposition(registry)
    assert b"oppstream_things_total 1.0" in text
    for name in STANDARD:
        assert name in text


def test_workers_sharing_their_metrics_expose_the_standard_ones_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SHARED_DIRECTORY, str(tmp_path))
    text = exposition(CollectorRegistry())
    assert b"process_resident_memory_bytes" in text
    assert text.count(b"# TYPE process_resident_memory_bytes") == 1
