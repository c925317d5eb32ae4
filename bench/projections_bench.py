"""Projections: events applied per second against a raw baseline, rebuild time against a raw
COPY of the same feed, every report's latency (and, with --growth, at growing sizes), memory.

1. N envelopes (opportunities created, followed up, advanced, won, lost or left open, 8
   events each, interleaved as a relay publishes them) on a fresh topic.
2. Baseline: a raw aiokafka consumer reading them, orjson, one psycopg executemany upsert per
   batch into one PostgreSQL table, commit, offsets committed.
3. Ours: `python -m projections` (the service as deployed) consuming the same topic into
   PostgreSQL: from its consumer having joined (/readyz) to every position stored.
4. Rebuild of R events from a `GET /notifications` feed served by another process; baseline:
   a raw client reading the same feed and COPYing its events into one table, just before.
5. Every report (bench/read_side.py: funnel, dwell, win rates, forecast, attainment; plain,
   as of an instant, by tier) on the rebuilt tables (R / 8 opportunities), sequential requests.
6. With --growth: bench/read_side.py's growth table.
RSS of our processes is sampled every 50 ms throughout.

    .venv/bin/python bench/projections_bench.py [--runs 3] [--events 200000]
        [--rebuild-events 1000000] [--growth 125000,250000,500000,1000000] [--no-reports]

With --no-reports only the apply and rebuild figures are measured and printed (bench/RESULTS.md
is left as it is): for development runs.
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from uuid import uuid4

import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from oppstream.broker import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import Store, broker  # noqa: E402
from notifications_feed import FEED_TOKEN  # noqa: E402
from processes import RssSampler, process, service_env, wait_ready  # noqa: E402
from read_side import growth, growth_table, measure  # noqa: E402
from results import write_section  # noqa: E402
from synthetic_history import EVENTS_PER_OPPORTUNITY, envelope  # noqa: E402

PARTITIONS = 6


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


# The baseline: the same feed read page by page and its events COPYed into one table.
RAW_REBUILD = f"""
import os, sys, orjson, psycopg, urllib.request
url, db = sys.argv[1:3]
token = os.environ["BENCH_FEED_TOKEN"]
conn = psycopg.connect(db)
conn.execute({RAW_TABLE!r})
conn.commit()
after = 0
while True:
    request = urllib.request.Request(
        f"{{url}}/notifications?after={{after}}&limit=10000",
        headers={{"Authorization": f"Bearer {{token}}"}},
    )
    body = orjson.loads(urllib.request.urlopen(request).read())
    if not body["items"]:
        break
    with conn.cursor() as cursor, cursor.copy(
        "COPY bench_raw_event (event_id, opportunity_id, version, event_type, occurred_at, "
        "payload) FROM STDIN"
    ) as copy:
        for item in body["items"]:
            e = item["envelope"]
            copy.write_row((e["event_id"], e["opportunity_id"], e["version"], e["event_type"],
                            e["occurred_at"], orjson.dumps(e["payload"]).decode()))
    conn.commit()
    after = body["next_after"]
"""


def rebuild(db_url: str, count: int, workdir: Path) -> tuple[float, float, int, float]:
    """Seconds our rebuild took, its peak RSS, its exit code; and the seconds the raw baseline
    took over the same feed, run just before it."""
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
        with Store("postgres", workdir) as raw_url:
            argv = [sys.executable, "-c", RAW_REBUILD, f"http://127.0.0.1:{port}", raw_url]
            started = time.perf_counter()
            with process(argv, env, workdir) as proc:
                if proc.wait() != 0:
                    raise RuntimeError("the raw baseline failed")
                raw = time.perf_counter() - started
        argv = [sys.executable, "-c", REBUILD, f"http://127.0.0.1:{port}"]
        started = time.perf_counter()
        with process(argv, env, workdir) as proc:
            rss = RssSampler(proc.pid)
            code = proc.wait()
            elapsed = time.perf_counter() - started
            return elapsed, rss.stop(), code, raw


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


# -- the whole run ------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rebuild-events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--growth", default="", help="sizes in opportunities, e.g. 125000,1000000")
    parser.add_argument(
        "--keep-growth",
        action="store_true",
        help="keep the growth databases (bench_readside_<size>)",
    )
    parser.add_argument(
        "--no-reports",
        action="store_true",
        help="apply and rebuild only; print the figures, leave RESULTS.md alone",
    )
    args = parser.parse_args()
    raws, ourses, rss_consume, rebuilds = [], [], [], []
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
        for n in range(args.runs):
            with Store("postgres", workdir) as url:
                seconds, rss_rebuild, code, raw_seconds = rebuild(url, args.rebuild_events, workdir)
                rebuilds.append((seconds, rss_rebuild, code, raw_seconds))
                print(
                    f"rebuild {n + 1} of {args.rebuild_events:,}: {seconds:.1f} s (exit {code}), "
                    f"raw COPY {raw_seconds:.1f} s, RSS {rss_rebuild:.0f} MB",
                    flush=True,
                )
                if n == args.runs - 1 and not args.no_reports:
                    size = args.rebuild_events // EVENTS_PER_OPPORTUNITY
                    reports, rss_reports = measure(url, workdir, size, args.requests)
        sizes = [] if args.no_reports else [int(s) for s in args.growth.split(",") if s]
        found = (
            growth(sizes, args.requests, 3, "bench_readside", workdir, keep=args.keep_growth)
            if sizes
            else []
        )
    raw, rate = statistics.median(raws), statistics.median(ourses)
    seconds = statistics.median(r[0] for r in rebuilds)
    raw_seconds = statistics.median(r[3] for r in rebuilds)
    rss_rebuild = max(r[1] for r in rebuilds)
    codes = sorted({r[2] for r in rebuilds})
    if args.no_reports:
        print(
            f"medians of {args.runs}: applied {rate:,.0f}/s vs raw {raw:,.0f}/s "
            f"({statistics.median(o / r for o, r in zip(ourses, raws, strict=True)):.2f}x per run); "
            f"rebuild of {args.rebuild_events:,} {seconds:.1f} s vs raw {raw_seconds:.1f} s "
            f"({statistics.median(r[3] / r[0] for r in rebuilds):.2f}x per run, exit {codes}); "
            f"peak RSS consuming {max(rss_consume):.0f} MB, rebuilding {rss_rebuild:.0f} MB"
        )
        return 0
    broker_name = (
        "OPPSTREAM_KAFKA_BOOTSTRAP"
        if "OPPSTREAM_KAFKA_BOOTSTRAP" in os.environ
        else "embedded Tansu"
    )
    size = args.rebuild_events // EVENTS_PER_OPPORTUNITY
    worst = max(p95 for _, p95 in reports.values())
    lines = [
        f"{args.events:,} events ({EVENTS_PER_OPPORTUNITY} per opportunity, {PARTITIONS} partitions, broker: "
        f"{broker_name}) applied to PostgreSQL; rebuilds of {args.rebuild_events:,} events from a "
        f"feed served by another process, the raw baseline reading the same feed just before; "
        f"medians of {args.runs} runs. Reports over the last rebuilt tables ({size:,} "
        f"opportunities): every case {args.requests} sequential requests after 3 warm-ups, "
        f"medians of 3 rounds. {os.cpu_count()} CPUs shared by PostgreSQL, the broker and the "
        "processes measured.",
        "",
        "| figure | baseline | ours | ratio / target |",
        "|---|---|---|---|",
        f"| events applied/s | raw consumer + executemany upsert into one table: {raw:,.0f} | "
        f"`python -m projections` (bi_event, bi_opportunity, bi_stage_visit, bi_opportunity_version, tallies + positions, one transaction per batch): {rate:,.0f} | "
        f"{rate / raw:.2f}× (target ≥ 0.6×) |",
        f"| rebuild of {args.rebuild_events:,} events | raw: the feed's pages COPYed into one table, {raw_seconds:.1f} s ({args.rebuild_events / raw_seconds:,.0f} ev/s) | "
        f"{seconds:.1f} s ({args.rebuild_events / seconds:,.0f} ev/s, exit {codes}) | "
        f"{raw_seconds / seconds:.2f}× (target ≤ 20 s and ≥ 0.6×) |",
        f"| report p95, {size:,} opportunities (worst of {len(reports)} cases below) | | {worst:.1f} ms | target ≤ 30 ms at 125,000, ≤ 100 ms at 1,000,000 |",
        f"| peak RSS | | consuming {max(rss_consume):.0f} MB, rebuilding {rss_rebuild:.0f} MB, serving reports {rss_reports:.0f} MB | target ≤ 250 MB |",
        "",
        f"Reports at {size:,} opportunities, p95 (p50) ms:",
        "",
        *growth_table([(size, reports)]),
    ]
    if found:
        lines += [
            "",
            "Growth: the database filled through the store (the code the consumer and the "
            "rebuild run) size by size; every case p95 (p50) ms:",
            "",
            *growth_table(found),
        ]
    body = "\n".join(lines)
    write_section(
        "Projections", " ".join(["python bench/projections_bench.py", *sys.argv[1:]]), body
    )
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
