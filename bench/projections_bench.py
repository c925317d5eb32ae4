"""Projections: events applied per second against a raw baseline, rebuild time, /funnel
latency, memory.

1. N envelopes (opportunities created, followed up, advanced, won, lost or left open, 8
   events each, interleaved as a relay publishes them) on a fresh topic.
2. Baseline: a raw aiokafka consumer reading them, orjson, one psycopg executemany upsert per
   batch into one PostgreSQL table, commit, offsets committed.
3. Ours: `python -m projections` (the service as deployed) consuming the same topic into
   PostgreSQL: from its consumer having joined (/readyz) to every position stored.
4. Rebuild of R events from a `GET /notifications` feed served by another process.
5. `GET /funnel` latency on the rebuilt tables (R / 8 opportunities), sequential requests.
RSS of our processes is sampled every 50 ms throughout.

    .venv/bin/python bench/projections_bench.py [--runs 3] [--events 200000] [--rebuild-events 1000000]
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from oppstream.broker import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import TOKENS, Store, auth_file, broker  # noqa: E402
from notifications_feed import FEED_TOKEN  # noqa: E402
from results import write_section  # noqa: E402
from synthetic_history import EVENTS_PER_OPPORTUNITY, envelope  # noqa: E402

PARTITIONS = 6


# -- processes and sampling ---------------------------------------------------------------


class RssSampler:
    """The largest resident set of a process, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def service_env(workdir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPPSTREAM_")}
    env["OPPSTREAM_AUTH_FILE"] = str(auth_file(workdir))
    env.update({f"OPPSTREAM_{k.upper()}": v for k, v in settings.items()})
    return env


@contextlib.contextmanager
def process(
    argv: list[str], env: dict[str, str], workdir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    log = (workdir / f"{time.monotonic_ns()}.log").open("wb")
    proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        time.sleep(0.02)
    raise TimeoutError(f"{url} not ready in {seconds} s")


# -- 1. publishing ------------------------------------------------------------------------


async def publish(bootstrap: str, topic: str, count: int) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=40000)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=40000, linger_ms=5
    )
    await producer.start()
    pending = []
    for position in range(1, count + 1):
        e = envelope(position)
        pending.append(
            await producer.send(topic, key=e["opportunity_id"].encode(), value=orjson.dumps(e))
        )
        if len(pending) >= 20_000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=40000)
    await consumer.start()
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    await consumer.stop()
    return {tp.partition: int(offset) for tp, offset in ends.items()}


# -- 2. the baseline ----------------------------------------------------------------------

RAW_TABLE = """CREATE TABLE IF NOT EXISTS bench_raw_event (
    event_id text PRIMARY KEY, opportunity_id text NOT NULL, version int NOT NULL,
    event_type text NOT NULL, occurred_at timestamptz NOT NULL, payload text NOT NULL)"""
RAW_UPSERT = """INSERT INTO bench_raw_event VALUES (%s, %s, %s, %s, %s, %s)
    ON CONFLICT (event_id) DO UPDATE SET version = EXCLUDED.version, payload = EXCLUDED.payload"""


async def raw_consume(bootstrap: str, topic: str, db_url: str, total: int) -> float:
    conn = psycopg.connect(db_url)
    conn.execute(RAW_TABLE)
    conn.commit()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-{uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        request_timeout_ms=40000,
    )
    await consumer.start()
    done, started = 0, None
    while done < total:
        batches = await consumer.getmany(timeout_ms=200, max_records=2000)
        if started is None and batches:
            started = time.perf_counter()
        for records in batches.values():
            rows = []
            for record in records:
                e = orjson.loads(record.value)
                rows.append(
                    (
                        e["event_id"],
                        e["opportunity_id"],
                        e["version"],
                        e["event_type"],
                        e["occurred_at"],
                        orjson.dumps(e["payload"]).decode(),
                    )
                )
            with conn.cursor() as cursor:
                cursor.executemany(RAW_UPSERT, rows)
            conn.commit()
            done += len(records)
        if batches:
            await consumer.commit()
    elapsed = time.perf_counter() - (started or time.perf_counter())
    await consumer.stop()
    conn.close()
    return total / elapsed


# -- 3. ours ------------------------------------------------------------------------------


def ours(
    bootstrap: str, topic: str, db_url: str, ends: dict[int, int], workdir: Path
) -> tuple[float, float]:
    port = free_port()
    env = service_env(
        workdir,
        projections_db_url=db_url,
        kafka_bootstrap=bootstrap,
        projections_topic=topic,
        projections_group=f"bench-projections-{uuid4().hex[:6]}",
        kafka_fetch_max_wait_ms="10",
        kafka_session_timeout_ms="6000",
    )
    argv = [sys.executable, "-m", "projections", "--port", str(port)]
    target = sum(ends.values())
    with process(argv, env, workdir) as proc:
        rss = RssSampler(proc.pid)
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        started = time.perf_counter()
        with psycopg.connect(db_url, autocommit=True) as conn:
            while True:
                stored = conn.execute(
                    "SELECT COALESCE(SUM(next_offset), 0) FROM projection_position"
                ).fetchone()
                if stored is not None and int(stored[0]) >= target:
                    break
                if proc.poll() is not None:
                    raise RuntimeError("the projections service exited")
                time.sleep(0.02)
        elapsed = time.perf_counter() - started
        return target / elapsed, rss.stop()


# -- 4. rebuild ---------------------------------------------------------------------------


REBUILD = """
import os, sys
from projections.entrypoints.rebuild import run
sys.exit(run(sys.argv[1], os.environ["BENCH_FEED_TOKEN"], progress=False))
"""


def rebuild(db_url: str, count: int, workdir: Path) -> tuple[float, float, int]:
    port = free_port()
    feed_argv = [
        sys.executable,
        str(Path(__file__).with_name("notifications_feed.py")),
        str(port),
        str(count),
    ]
    with process(feed_argv, dict(os.environ), workdir) as feed:
        wait_ready_feed(port, feed)
        env = {**service_env(workdir, projections_db_url=db_url), "BENCH_FEED_TOKEN": FEED_TOKEN}
        argv = [sys.executable, "-c", REBUILD, f"http://127.0.0.1:{port}"]
        started = time.perf_counter()
        with process(argv, env, workdir) as proc:
            rss = RssSampler(proc.pid)
            code = proc.wait()
            elapsed = time.perf_counter() - started
            return elapsed, rss.stop(), code


def wait_ready_feed(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 600
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {FEED_TOKEN}"}
    )
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the feed exited")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(request, timeout=2):  # noqa: S310 - loopback
                return
        time.sleep(0.2)
    raise TimeoutError("the feed did not start")


# -- 5. /funnel ---------------------------------------------------------------------------


def funnel_latency(db_url: str, workdir: Path, requests: int) -> tuple[list[float], float, int]:
    port = free_port()
    env = service_env(workdir, projections_db_url=db_url)
    argv = [sys.executable, "-m", "projections", "--port", str(port)]
    with process(argv, env, workdir) as proc:
        rss = RssSampler(proc.pid)
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/funnel",
            headers={"Authorization": f"Bearer {TOKENS['viewer']}"},
        )
        timings, reached = [], 0
        for n in range(requests + 5):
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
                body = orjson.loads(answer.read())
            if n >= 5:  # the first ones warm the caches
                timings.append((time.perf_counter() - started) * 1000)
            reached = sum(p["stages"][0]["reached"] for p in body["pipelines"])
        return sorted(timings), rss.stop(), reached


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rebuild-events", type=int, default=1_000_000)
    parser.add_argument("--funnel-requests", type=int, default=100)
    args = parser.parse_args()
    raws, ourses, rss_consume = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for n in range(args.runs):
            with broker() as bootstrap:
                topic = f"bench.events.{uuid4().hex[:6]}"
                ends = asyncio.run(publish(bootstrap, topic, args.events))
                with Store("postgres", workdir) as raw_url:
                    raw = asyncio.run(raw_consume(bootstrap, topic, raw_url, args.events))
                with Store("postgres", workdir) as url:
                    rate, rss = ours(bootstrap, topic, url, ends, workdir)
            raws.append(raw)
            ourses.append(rate)
            rss_consume.append(rss)
            print(
                f"run {n + 1}: raw {raw:,.0f}/s ours {rate:,.0f}/s ({rate / raw:.2f}x), RSS {rss:.0f} MB",
                flush=True,
            )
        with Store("postgres", workdir) as url:
            seconds, rss_rebuild, code = rebuild(url, args.rebuild_events, workdir)
            print(
                f"rebuild of {args.rebuild_events:,}: {seconds:.1f} s (exit {code}), RSS {rss_rebuild:.0f} MB",
                flush=True,
            )
            timings, rss_funnel, opportunities = funnel_latency(url, workdir, args.funnel_requests)
            print(
                f"/funnel over {opportunities:,} opportunities: p50 {pct(timings, 50):.0f} ms p95 {pct(timings, 95):.0f} ms",
                flush=True,
            )
    raw, rate = statistics.median(raws), statistics.median(ourses)
    broker_name = (
        "OPPSTREAM_KAFKA_BOOTSTRAP"
        if "OPPSTREAM_KAFKA_BOOTSTRAP" in os.environ
        else "embedded Tansu"
    )
    body = "\n".join(
        [
            f"{args.events:,} events ({EVENTS_PER_OPPORTUNITY} per opportunity, {PARTITIONS} partitions, broker: "
            f"{broker_name}) applied to PostgreSQL; medians of {args.runs} runs. Rebuild of "
            f"{args.rebuild_events:,} events from a feed served by another process; /funnel "
            f"over the rebuilt tables, {args.funnel_requests} sequential requests after 5 warm-ups. "
            f"{os.cpu_count()} CPUs shared by PostgreSQL, the broker and the processes measured.",
            "",
            "| figure | baseline | ours | ratio / target |",
            "|---|---|---|---|",
            f"| events applied/s | raw consumer + executemany upsert into one table: {raw:,.0f} | "
            f"`python -m projections` (bi_event, bi_opportunity, bi_stage_visit, bi_opportunity_version + positions, one transaction per batch): {rate:,.0f} | "
            f"{rate / raw:.2f}× (target ≥ 20,000/s and ≥ 0.4×) |",
            f"| rebuild of {args.rebuild_events:,} events | | {seconds:.1f} s ({args.rebuild_events / seconds:,.0f} ev/s, exit {code}) | target ≤ 60 s for 1,000,000 |",
            f"| `GET /funnel`, {opportunities:,} opportunities | | p50 {pct(timings, 50):.0f} ms, p95 {pct(timings, 95):.0f} ms | target p95 ≤ 200 ms |",
            f"| peak RSS | | consuming {max(rss_consume):.0f} MB, rebuilding {rss_rebuild:.0f} MB, serving /funnel {rss_funnel:.0f} MB | target ≤ 250 MB |",
        ]
    )
    write_section(
        "Projections", " ".join(["python bench/projections_bench.py", *sys.argv[1:]]), body
    )
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
