"""Several worker processes on one port (`OPPSTREAM_WORKERS`, `--workers`): each sees what
the others wrote, races between them end in one winner, and they die with their parent."""

import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from operator import not_
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import poll
from tests.support.postgres import fresh_database
from tests.support.principals import auth, customer
from tests.support.processes import Service, is_listening, run_oppstream, service_env, start_service

pytestmark = pytest.mark.slow

WORKERS = 2


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Service]:
    with fresh_database("oppstream_workers") as url:
        env = service_env(tmp_path, eventstore_url=url, workers=str(WORKERS))
        service = start_service("opportunity", env, tmp_path)
        try:
            yield service
        finally:
            service.stop()


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[1].split()[0] != "Z"


@pytest.mark.postgres
def test_each_worker_sees_what_the_others_wrote(workers: Service) -> None:
    assert len(children(workers.pid)) == WORKERS
    created = httpx.post(
        f"{workers.url}/opportunities",
        json={"type": "new", "customer": customer()},
        headers=auth("rep-1"),
    )
    assert created.status_code == 201, created.text
    oid, version = created.json()["id"], created.json()["version"]
    # A new connection per command: the kernel hands each to either worker, so a worker
    # often acts on an opportunity whose cached copy another worker has moved on since.
    for n in range(30):
        logged = httpx.post(
            f"{workers.url}/opportunities/{oid}/follow-ups",
            json={"kind": "call", "note": f"call {n}"},
            headers={**auth("rep-1"), "If-Match": str(version)},
        )
        assert logged.status_code == 200, logged.text
        assert logged.json()["version"] == version + 1
        version += 1
    history = httpx.get(f"{workers.url}/opportunities/{oid}/history", headers=auth("rep-1"))
    assert [e["version"] for e in history.json()["events"]] == list(range(1, version + 1))


@pytest.mark.postgres
def test_parallel_advances_through_both_workers_have_one_winner(workers: Service) -> None:
    created = httpx.post(
        f"{workers.url}/opportunities",
        json={"type": "new", "customer": customer()},
        headers=auth("rep-1"),
    ).json()

    def advance(_: int) -> int:
        return httpx.post(
            f"{workers.url}/opportunities/{created['id']}/advance",
            json={"to_stage": "requirements"},
            headers={**auth("rep-1"), "If-Match": str(created["version"])},
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(advance, range(8)))
    assert statuses[200] == 1, statuses
    assert set(statuses) <= {200, 409, 412}, statuses


@pytest.mark.postgres
def test_metrics_count_the_commands_of_every_worker(workers: Service) -> None:
    creates = 12
    for _ in range(creates):  # a new connection each: the kernel spreads them over the workers
        answer = httpx.post(
            f"{workers.url}/opportunities",
            json={"type": "new", "customer": customer()},
            headers=auth("rep-1"),
        )
        assert answer.status_code == 201, answer.text

    for _ in range(6):  # whichever worker answers the scrape
        scraped = httpx.get(f"{workers.url}/metrics").text
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scraped)
            for sample in family.samples
        }
        created = (("command", "create"), ("status", "201"))
        assert samples[("oppstream_commands_total", created)] == creates, scraped
        assert samples[("oppstream_command_seconds_count", (("command", "create"),))] == creates
        # The process collector of the worker that answered, beside the sum (SPEC §11).
        assert samples[("process_resident_memory_bytes", ())] > 0


@pytest.mark.postgres
def test_kill_9_of_the_parent_takes_every_worker_with_it(workers: Service) -> None:
    pids = children(workers.pid)
    assert len(pids) == WORKERS
    workers.kill_hard()
    poll(lambda: any(alive(p) for p in pids) or is_listening(workers.port), not_, 10)
    assert not any(alive(p) for p in pids)
    assert not is_listening(workers.port)


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    env = service_env(tmp_path, eventstore_url=f"sqlite:///{tmp_path}/store.db")
    run = run_oppstream(["serve", "opportunity", "--workers", "2"], env, tmp_path)
    assert run.returncode == 2
    assert "OPPSTREAM_WORKERS=2 needs a PostgreSQL store" in run.stderr
