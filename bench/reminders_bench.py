"""Reminders scheduler: tick cost when nothing is due, firing rate when many come due, memory.

With N open opportunities' timers in PostgreSQL (loaded with COPY, next looks days ahead):

1. a scheduler round when nothing is due (index probe + outbox probe), in-process;
2. D opportunities made due at once, fired by the scheduler (fired log and outbox, publish
   to the broker, acknowledged, outbox cleared) vs. a raw aiokafka producer publishing the same D reminder
   messages to a fresh topic (the baseline, measured in the same run);
3. the service as deployed (`python -m reminders`, a process of its own) firing another D
   due at once: its rate and its peak RSS.

    .venv/bin/python bench/reminders_bench.py [--runs 3] [--opportunities 1000000] [--due 100000]
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import psycopg
import sqlalchemy as sa

from chassis.kafka.producing import ensure_topics
from contracts.rules import load_rulebook
from oppstream.broker import free_port
from reminders.adapters.kafka import kafka_publisher
from reminders.adapters.schema import fired, opportunities
from reminders.adapters.store import Store
from reminders.adapters.system_clock import system_clock
from reminders.application.ownership import Ownership
from reminders.application.replan import RULES_KEY, rules_fingerprint
from reminders.application.scheduler import Scheduler
from reminders.domain.timers import Planner
from reminders.metrics import Metrics
from reminders.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import Store as Database  # noqa: E402
from launch import auth_file, broker, raw_publish  # noqa: E402
from results import write_section  # noqa: E402

PARTITIONS = 6
BATCH = 2000
COLUMNS = (
    "opportunity_id, partition, version, type, tier, ownership, stage, status, owner_id, "
    "team_id, last_progress_at, last_progress_version, next_due_at"
)


def opportunity_id(i: int) -> str:
    return str(UUID(int=i))


def load(url: str, count: int) -> None:
    """`count` open opportunities with progress in the last two days: next look days ahead."""
    now = datetime.now(UTC)
    dsn = "postgresql://" + url.split("://", 1)[1]
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        with cursor.copy(f"COPY reminders_opportunity ({COLUMNS}) FROM STDIN") as copy:
            for i in range(count):
                tier = "SMB" if i % 3 else "KA"
                progress = now - timedelta(seconds=(i * 7919) % 172_800)
                first = progress + timedelta(days=3 if tier == "SMB" else 7)
                copy.write_row(
                    (
                        opportunity_id(i),
                        i % PARTITIONS,
                        1,
                        "new",
                        tier,
                        "PRIVATE",
                        "initial_contact",
                        "open",
                        f"rep-{i % 50}",
                        "east" if i % 2 else "west",
                        progress,
                        1,
                        first,
                    )
                )
        conn.commit()
        conn.execute("ANALYZE reminders_opportunity")
        conn.commit()


def arm(store: Store, first: int, count: int) -> None:
    """Make opportunities [first, first + count) idle 8 days: one reminder due now each."""
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(
            opportunities.update()
            .where(
                opportunities.c.opportunity_id >= opportunity_id(first),
                opportunities.c.opportunity_id < opportunity_id(first + count),
            )
            .values(
                last_progress_at=now - timedelta(days=8), next_due_at=now - timedelta(seconds=1)
            )
        )


def fired_in(store: Store, first: int, count: int) -> list[tuple[bytes, bytes]]:
    """The reminders fired for opportunities [first, first + count): key and bytes."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(fired.c.opportunity_id, fired.c.reminder).where(
                fired.c.opportunity_id >= opportunity_id(first),
                fired.c.opportunity_id < opportunity_id(first + count),
            )
        )
        return [(oid.encode(), bytes(reminder)) for oid, reminder in rows]


async def idle_ticks(scheduler: Scheduler, rounds: int) -> list[float]:
    found = []
    for _ in range(rounds):
        started = time.perf_counter()
        await scheduler.round()
        found.append((time.perf_counter() - started) * 1000)
    return sorted(found)


async def fire_all(scheduler: Scheduler, store: Store, first: int, count: int) -> float:
    arm(store, first, count)
    started = time.perf_counter()
    while await scheduler.round():
        pass
    elapsed = time.perf_counter() - started
    done = len(fired_in(store, first, count))
    if done != count or store.count_pending():
        raise RuntimeError(f"fired {done} of {count}; {store.count_pending()} not sent")
    return count / elapsed


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def service_run(
    url: str, bootstrap: str, store: Store, first: int, due: int, workdir: Path
) -> tuple[float, float, float]:
    """The deployed process fires `due` timers: (its rate, peak RSS MB, RSS MB when idle)."""
    port = free_port()
    env = {
        **os.environ,
        "OPPSTREAM_REMINDERS_DB_URL": url,
        "OPPSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "OPPSTREAM_AUTH_FILE": str(auth_file(workdir)),
        "OPPSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "reminders", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _ready(f"{base}/readyz"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service did not become ready")
            time.sleep(0.1)
        idle = peak_rss_mb(process.pid)
        before = _published(base)
        arm(store, first, due)
        started = time.perf_counter()
        while _published(base) - before < due:
            if time.perf_counter() - started > 600:
                raise TimeoutError("the service did not fire everything in 10 minutes")
            time.sleep(0.05)
        rate = due / (time.perf_counter() - started)
        return rate, peak_rss_mb(process.pid), idle
    finally:
        process.terminate()
        process.wait(timeout=30)


def _published(base: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith("oppstream_reminders_published_total "):
            return float(line.split()[1])
    return 0.0


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=100_000)
    args = parser.parse_args()
    if (args.runs + 1) * args.due > args.opportunities:
        parser.error("--opportunities must hold (runs + 1) × --due")
    with (
        tempfile.TemporaryDirectory() as tmp,
        Database("postgres", Path(tmp)) as url,
        broker() as bootstrap,
    ):
        store = Store(url)
        store.migrate()
        started = time.perf_counter()
        load(url, args.opportunities)
        print(
            f"loaded {args.opportunities:,} opportunities in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        settings = Settings(reminders_db_url=url, kafka_bootstrap=bootstrap)
        rules = load_rulebook()
        # The rows are what the service would have computed under these rules: no replanning.
        store.set_meta(RULES_KEY, rules_fingerprint(rules, settings.timezone))
        asyncio.run(ensure_topics(settings))
        ownership = Ownership()
        ownership.set(range(PARTITIONS))
        planner = Planner(rules, settings.zone)

        async def measure() -> tuple[list[float], list[float], list[float]]:
            publisher = kafka_publisher(settings)
            scheduler = Scheduler(
                store, planner, publisher, system_clock, ownership, Metrics(), BATCH, 0.2
            )
            ticks: list[float] = []
            ours: list[float] = []
            raws: list[float] = []
            await scheduler.round()  # the first round reads the outbox: not a steady tick
            for run in range(args.runs):
                ticks += await idle_ticks(scheduler, 200)
                first = run * args.due
                ours.append(await fire_all(scheduler, store, first, args.due))
                raws.append(await raw_publish(bootstrap, fired_in(store, first, args.due)))
                print(
                    f"run {run + 1}: idle tick p50 {statistics.median(ticks):.2f} ms; "
                    f"fired {ours[-1]:,.0f}/s vs raw producer {raws[-1]:,.0f}/s",
                    flush=True,
                )
            await publisher.close()
            return sorted(ticks), ours, raws

        ticks, ours, raws = asyncio.run(measure())
        rate, rss, idle_rss = service_run(
            url, bootstrap, store, args.runs * args.due, args.due, Path(tmp)
        )
        print(
            f"service process: {rate:,.0f}/s, peak RSS {rss:.0f} MB (idle {idle_rss:.0f} MB)",
            flush=True,
        )
        store.close()
    p50, p99 = statistics.median(ticks), ticks[int(0.99 * (len(ticks) - 1))]
    ours_m, raw_m = statistics.median(ours), statistics.median(raws)
    kind = (
        "OPPSTREAM_KAFKA_BOOTSTRAP"
        if "OPPSTREAM_KAFKA_BOOTSTRAP" in os.environ
        else "embedded Tansu"
    )
    body = "\n".join(
        [
            f"{args.opportunities:,} open opportunities' timers in PostgreSQL (next looks days "
            f"ahead); {args.due:,} made due at once per run; broker: {kind}; rounds of "
            f"{BATCH}; medians of {args.runs} runs ({len(ticks)} idle ticks).",
            "",
            "| figure | baseline | ours | target |",
            "|---|---|---|---|",
            f"| scheduler tick, nothing due | | p50 {p50:.2f} ms, p99 {p99:.2f} ms | ≤ 5 ms |",
            f"| reminders fired/s (fired log + outbox, publish, ack, outbox cleared) | raw aiokafka producer, same messages: {raw_m:,.0f}/s | {ours_m:,.0f}/s ({ours_m / raw_m:.2f}×) | ≥ 10,000/s |",
            f"| the service process firing {args.due:,} due at once | | {rate:,.0f}/s | ≥ 10,000/s |",
            f"| peak RSS of the service process | | {rss:.0f} MB (idle {idle_rss:.0f} MB) | ≤ 250 MB |",
        ]
    )
    write_section(
        "Reminders scheduler", " ".join(["python bench/reminders_bench.py", *sys.argv[1:]]), body
    )
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
