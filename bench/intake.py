"""Lead intake end to end: qualified leads published to Kafka → opportunities recorded in
PostgreSQL (and answered), through a running opportunity service; compared with a raw
aiokafka consumer reading the same leads (the broker's own pace).

    .venv/bin/python bench/intake.py [--runs 3] [--leads 20000]
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from stdnum.cn import uscc as stdnum_uscc

from contracts import topics
from oppstream.broker import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import Store, broker, opportunity_service  # noqa: E402
from results import write_section  # noqa: E402


def leads(count: int, salt: str) -> list[tuple[bytes, bytes]]:
    found = []
    for i in range(count):
        body = f"91{salt}{i:011d}"
        lead_id = f"lead-{salt}-{i}"
        lead = {
            "lead_id": lead_id,
            "qualified_at": datetime.now(UTC).isoformat(),
            "customer": {
                "uscc": body + stdnum_uscc.calc_check_digit(body),
                "name": f"客户 {i}",
                "tier": "SMB" if i % 3 else "KA",
                "ownership": "PRIVATE",
            },
            "owner_id": "rep-1",
            "team_id": "east",
            "expected_amount": "120000.00",
        }
        found.append((lead_id.encode(), orjson.dumps(lead)))
    return found


async def publish(bootstrap: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=40000)
    await producer.start()
    futures = [
        await producer.send(topics.LEADS_QUALIFIED, key=key, value=value) for key, value in records
    ]
    await asyncio.gather(*futures)
    await producer.stop()


async def raw_consume(bootstrap: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        topics.LEADS_QUALIFIED,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        request_timeout_ms=40000,
        session_timeout_ms=6000,
    )
    await consumer.start()
    started, seen = time.perf_counter(), 0
    while seen < count:
        batches = await consumer.getmany(timeout_ms=500, max_records=2000)
        for records in batches.values():
            for record in records:
                orjson.loads(record.value)
                seen += 1
        await consumer.commit()
    elapsed = time.perf_counter() - started
    await consumer.stop()
    return count / elapsed


def taken(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:  # noqa: S310 - loopback
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("oppstream_leads_total{")
    )


def measure(workdir: Path, count: int) -> tuple[float, float]:
    port = free_port()
    with (
        Store("postgres", workdir) as url,
        broker() as bootstrap,
        opportunity_service(
            url, port, workdir, kafka_bootstrap=bootstrap, kafka_session_timeout_ms="6000"
        ),
    ):
        records = leads(count, f"{uuid4().int % 10**6:06d}")
        asyncio.run(publish(bootstrap, records[:100]))
        deadline = time.monotonic() + 60
        while taken(port) < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.perf_counter()
        asyncio.run(publish(bootstrap, records[100:]))
        deadline = time.monotonic() + 600
        while taken(port) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        ours = (count - 100) / (time.perf_counter() - started)
        raw = asyncio.run(raw_consume(bootstrap, count))
        return raw, ours


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--leads", type=int, default=20_000)
    args = parser.parse_args()
    raws, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            raw, rate = measure(Path(tmp), args.leads)
            raws.append(raw)
            ours.append(rate)
            print(f"run {n + 1}: raw consume {raw:,.0f}/s, intake {rate:,.0f} leads/s", flush=True)
    raw, rate = statistics.median(raws), statistics.median(ours)
    body = "\n".join(
        [
            f"{args.leads:,} qualified leads published while the service runs on PostgreSQL; "
            f"a lead counts when its opportunity is recorded (or its rejection published); "
            f"medians of {args.runs} runs.",
            "",
            "| baseline: raw aiokafka consumer (read + parse + commit) | ours: leads/s end to end | ratio | target |",
            "|---|---|---|---|",
            f"| {raw:,.0f}/s | {rate:,.0f}/s | {rate / raw:.2f}× | ≥ 1,000 leads/s |",
        ]
    )
    write_section("Lead intake", " ".join(["python bench/intake.py", *sys.argv[1:]]), body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
